"""TLS options of the c104 test peers (c104.TransportSecurity, IEC 62351-3).

    --tls-ca FILE        CA certificate the partner's certificate must chain to
    --tls-cert FILE      own certificate
    --tls-key FILE       own private key
    --tls-allow FILE     only this partner certificate (repeatable; c104 "only known")
    --tls-version V      1.2, 1.3 or 1.2-1.3 (default: c104's own range)
    --tls-no-validate    do not check the partner's chain and time

`from_argv(argv, client)` removes these from argv and returns (TransportSecurity or None, the
rest). It must run before anything imports c104: a c104 2.2.1 TLS client needs the hostname
shim (c104_tls_hostname.c, compiled here with cc into the temp dir) loaded first.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SOURCE = os.path.join(HERE, "c104_tls_hostname.c")


def _load_client_shim() -> None:
    if "c104" in sys.modules:
        raise RuntimeError("c104_tls.from_argv must run before c104 is imported")
    src = open(SHIM_SOURCE, "rb").read()
    tag = hashlib.sha256(src).hexdigest()[:12]
    lib = os.path.join(tempfile.gettempdir(), f"fieldbridge-c104-tls-shim-{tag}.so")
    if not os.path.exists(lib):
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            print("SKIP no C compiler (cc) for the c104 TLS client shim", flush=True)
            sys.exit(2)
        tmp = f"{lib}.{os.getpid()}"
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", tmp, SHIM_SOURCE, "-ldl"], check=True)
        os.replace(tmp, lib)
    ctypes.CDLL(lib, mode=os.RTLD_GLOBAL)


def from_argv(argv, client: bool):
    opts = {"allow": []}
    rest = []
    it = iter(argv)
    for a in it:
        if a in ("--tls-ca", "--tls-cert", "--tls-key", "--tls-version"):
            opts[a[6:]] = next(it)
        elif a == "--tls-allow":
            opts["allow"].append(next(it))
        elif a == "--tls-no-validate":
            opts["no_validate"] = True
        else:
            rest.append(a)
    if "cert" not in opts:
        return None, rest
    if client:
        _load_client_shim()
    import c104

    tls = c104.TransportSecurity(validate=not opts.get("no_validate"), only_known=bool(opts["allow"]))
    if "ca" in opts:
        tls.set_ca_certificate(cert=opts["ca"])
    tls.set_certificate(cert=opts["cert"], key=opts["key"])
    for a in opts["allow"]:
        tls.add_allowed_remote_certificate(cert=a)
    if "version" in opts:
        names = {"1.2": c104.TlsVersion.TLS_1_2, "1.3": c104.TlsVersion.TLS_1_3}
        lo, _, hi = opts["version"].partition("-")
        tls.set_version(min=names[lo], max=names[hi or lo])
    return tls, rest
