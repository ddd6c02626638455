#!/usr/bin/env python3
"""usign-compatible Ed25519 keys and signatures (OpenWrt's opkg feed signing).

    usign.py keygen -s vendor.sec -p vendor.pub [-c COMMENT]
    usign.py sign   -s vendor.sec -m Packages [-x Packages.sig]
    usign.py verify -p vendor.pub -m Packages [-x Packages.sig]
    usign.py fingerprint -p vendor.pub        (the file name under /etc/opkg/keys/)

The files are those of OpenWrt's usign (and OpenBSD's signify, which verifies them too): an
"untrusted comment:" line, then base64 of
    public key:  "Ed" | key id (8) | public key (32)
    secret key:  "Ed" | "BK" | kdf rounds (u32 BE, 0 = no passphrase) | salt (16)
                 | checksum (8, SHA-512 of the 64-byte secret key) | key id (8)
                 | secret key (64 = seed | public key)
    signature:   "Ed" | key id (8) | Ed25519 signature of the whole message (64)
The Ed25519 maths is the `cryptography` package's (Debian's python3-cryptography, or pip).
"""
import argparse
import base64
import hashlib
import os
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError:  # pragma: no cover
    sys.exit("usign.py: needs the Python package 'cryptography' (apt install python3-cryptography)")

PKALG = b"Ed"
KDFALG = b"BK"


class UsignError(Exception):
    pass


def _read(path, what):
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsignError(f"cannot read {what} {path}: {e}") from e
    if len(lines) < 2 or not lines[0].startswith("untrusted comment:"):
        raise UsignError(f"{path}: not a usign {what} (no 'untrusted comment:' line)")
    try:
        blob = base64.b64decode(lines[1], validate=True)
    except ValueError as e:
        raise UsignError(f"{path}: bad base64: {e}") from e
    if blob[:2] != PKALG:
        raise UsignError(f"{path}: not an Ed25519 {what}")
    return blob


def _write(path, comment, blob, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"untrusted comment: {comment}\n{base64.b64encode(blob).decode()}\n")


def _raw_public(private):
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keygen(seckey_path, pubkey_path, comment=None):
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    public = _raw_public(private)
    secret = seed + public
    keyid = os.urandom(8)
    checksum = hashlib.sha512(secret).digest()[:8]
    blob = PKALG + KDFALG + (0).to_bytes(4, "big") + os.urandom(16) + checksum + keyid + secret
    fp = keyid.hex()
    _write(seckey_path, f"{comment or 'fieldbridge feed'} secret key {fp}", blob, 0o600)
    _write(pubkey_path, f"{comment or 'fieldbridge feed'} public key {fp}", PKALG + keyid + public)
    return fp


def load_secret(path):
    blob = _read(path, "secret key")
    if len(blob) != 104 or blob[2:4] != KDFALG:
        raise UsignError(f"{path}: not a usign secret key")
    if int.from_bytes(blob[4:8], "big") != 0:
        raise UsignError(f"{path}: passphrase-protected keys are not supported")
    checksum, keyid, secret = blob[24:32], blob[32:40], blob[40:104]
    if hashlib.sha512(secret).digest()[:8] != checksum:
        raise UsignError(f"{path}: checksum mismatch (corrupt key)")
    private = Ed25519PrivateKey.from_private_bytes(secret[:32])
    if _raw_public(private) != secret[32:]:
        raise UsignError(f"{path}: public half does not match the seed")
    return keyid, private


def load_public(path):
    blob = _read(path, "public key")
    if len(blob) != 42:
        raise UsignError(f"{path}: not a usign public key")
    return blob[2:10], Ed25519PublicKey.from_public_bytes(blob[10:42])


def sign(seckey_path, message_path, sig_path):
    keyid, private = load_secret(seckey_path)
    with open(message_path, "rb") as f:
        signature = private.sign(f.read())
    _write(sig_path, f"signed by key {keyid.hex()}", PKALG + keyid + signature)


def verify(pubkey_path, message_path, sig_path):
    keyid, public = load_public(pubkey_path)
    blob = _read(sig_path, "signature")
    if len(blob) != 74:
        raise UsignError(f"{sig_path}: not a usign signature")
    if blob[2:10] != keyid:
        raise UsignError(f"{sig_path}: signed by key {blob[2:10].hex()}, not {keyid.hex()}")
    with open(message_path, "rb") as f:
        message = f.read()
    try:
        public.verify(blob[10:74], message)
    except InvalidSignature as e:
        raise UsignError(f"{message_path}: BAD signature") from e


def main(argv=None):
    p = argparse.ArgumentParser(description="usign-compatible Ed25519 keys and signatures")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("-s", required=True, metavar="SECKEY")
    k.add_argument("-p", required=True, metavar="PUBKEY")
    k.add_argument("-c", metavar="COMMENT")
    s = sub.add_parser("sign")
    s.add_argument("-s", required=True, metavar="SECKEY")
    s.add_argument("-m", required=True, metavar="MESSAGE")
    s.add_argument("-x", metavar="SIGFILE")
    v = sub.add_parser("verify")
    v.add_argument("-p", required=True, metavar="PUBKEY")
    v.add_argument("-m", required=True, metavar="MESSAGE")
    v.add_argument("-x", metavar="SIGFILE")
    f = sub.add_parser("fingerprint")
    f.add_argument("-p", required=True, metavar="PUBKEY")
    a = p.parse_args(argv)
    try:
        if a.cmd == "keygen":
            for path in (a.s, a.p):
                if os.path.exists(path):
                    raise UsignError(f"{path} exists: not overwriting a key")
            print(keygen(a.s, a.p, a.c))
        elif a.cmd == "sign":
            sign(a.s, a.m, a.x or a.m + ".sig")
        elif a.cmd == "verify":
            verify(a.p, a.m, a.x or a.m + ".sig")
            print("OK")
        elif a.cmd == "fingerprint":
            print(load_public(a.p)[0].hex())
    except UsignError as e:
        print(f"usign.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
