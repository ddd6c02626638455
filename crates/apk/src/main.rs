//! `fieldbridge-mkapk`: apk v3 packages and signed indexes for OpenWrt 25.12 feeds. Its
//! subcommands take the options of `apk mkpkg` / `apk mkndx` that OpenWrt's build uses, so
//! packaging/mkipk.sh runs either this tool or a real apk-tools (`APK=/path/to/apk`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fieldbridge_apk::adb::Compression;
use fieldbridge_apk::{index, pkg, read};

#[derive(Parser)]
#[command(name = "fieldbridge-mkapk", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Comp {
    None,
    Deflate,
}

impl From<Comp> for Compression {
    fn from(c: Comp) -> Self {
        match c {
            Comp::None => Compression::None,
            Comp::Deflate => Compression::Deflate,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes one package from a staged tree (as `apk mkpkg`).
    #[command(alias = "pkg")]
    Mkpkg {
        /// The staged root (modes and symlinks as they are; owner root:root).
        #[arg(short = 'F', long)]
        files: PathBuf,
        /// KEY:VALUE of name, version, description, arch, license, origin, maintainer, url, depends.
        #[arg(short = 'I', long)]
        info: Vec<String>,
        /// TYPE:FILE, TYPE one of trigger, pre-install, post-install, pre-deinstall,
        /// post-deinstall, pre-upgrade, post-upgrade.
        #[arg(short = 's', long)]
        script: Vec<String>,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "deflate")]
        compression: Comp,
    },
    /// Writes a packages.adb index of the given packages (as `apk mkndx`).
    #[command(alias = "index")]
    Mkndx {
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// EC prime256v1 private key (PEM) to sign the index with.
        #[arg(long)]
        sign_key: Option<PathBuf>,
        #[arg(short = 'd', long)]
        description: Option<String>,
        #[arg(long, value_enum, default_value = "deflate")]
        compression: Comp,
        /// Accepted for apk's command line; packages are always read unverified.
        #[arg(long)]
        allow_untrusted: bool,
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
    /// Prints a package or index as text (and checks its hashes).
    Dump { file: PathBuf },
    /// Checks an index's signature against a public key (exit 1 if none verifies).
    Verify {
        #[arg(long)]
        key: PathBuf,
        index: PathBuf,
    },
}

fn epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn write_atomic(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn main() -> Result<()> {
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    match Cli::parse().cmd {
        Cmd::Mkpkg {
            files,
            info,
            script,
            output,
            compression,
        } => {
            let mut spec = pkg::PkgSpec {
                epoch: epoch(),
                ..Default::default()
            };
            for kv in &info {
                spec.set_info(kv)?;
            }
            for s in &script {
                let (ty, file) = s
                    .split_once(':')
                    .with_context(|| format!("--script {s}: expected TYPE:FILE"))?;
                let body = std::fs::read(file).with_context(|| format!("reading {file}"))?;
                spec.set_script(ty, body)?;
            }
            let bytes = pkg::build(&files, &spec, compression.into())?;
            write_atomic(&output, &bytes)?;
        }
        Cmd::Mkndx {
            output,
            sign_key,
            description,
            compression,
            allow_untrusted: _,
            packages,
        } => {
            let bytes = index::build(
                &packages,
                description.as_deref(),
                sign_key.as_deref(),
                compression.into(),
            )?;
            write_atomic(&output, &bytes)?;
            writeln!(out, "Index has {} packages", packages.len())?;
        }
        Cmd::Dump { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let text = match read::package(&bytes) {
                Ok(p) => read::describe_package(&p),
                Err(_) => read::describe_index(&read::index(&bytes)?),
            };
            write!(out, "{text}")?;
        }
        Cmd::Verify { key, index } => {
            let bytes =
                std::fs::read(&index).with_context(|| format!("reading {}", index.display()))?;
            let ndx = read::index(&bytes)?;
            let c = &ndx.container;
            let mut ok = false;
            for s in &c.signatures {
                ok |= fieldbridge_apk::sign::verify(c.schema, &c.adb, s, &key)?;
            }
            if !ok {
                anyhow::bail!(
                    "{}: no signature verifies with {}",
                    index.display(),
                    key.display()
                );
            }
            writeln!(out, "{}: signature OK", index.display())?;
        }
    }
    Ok(())
}
