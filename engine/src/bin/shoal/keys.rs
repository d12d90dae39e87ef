//! `shoal keys …`: the operator's key commands on a node's data directories. The commands
//! that change the key directory take its lock, so they refuse to run while a node uses the
//! directory (its identity and pins live in memory; change those through the running node).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use shoal_protocols::NodeName;
use shoal_transport::auth::keys::PUBLIC_KEY_FILE_NAME;
use shoal_transport::auth::{fingerprint, read_public_key, KeyDir, TrustStore, DEFAULT_KEY_DIR};
use shoal_transport::tls::{read_certificate_key, TlsMaterial, CERT_FILE_NAME, DEFAULT_CERT_DIR};

/// Where the files are (the node's `auth_key_dir` and `quic_cert_dir`).
#[derive(Args, Debug, Clone)]
pub(crate) struct Dirs {
    /// Identity keys, `trusted/` pins and `backups/` (`auth_key_dir`).
    #[arg(long, default_value = DEFAULT_KEY_DIR)]
    key_dir: PathBuf,
    /// TLS key and certificate (`quic_cert_dir`).
    #[arg(long, default_value = DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Generate what is missing (identity pair, TLS key and certificate); print fingerprints.
    Init {
        #[command(flatten)]
        dirs: Dirs,
        /// Node name (`name@host`), written into a new certificate.
        #[arg(long)]
        name: String,
    },
    /// Print the identity and TLS fingerprints (nothing is generated).
    Show {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Print the fingerprint of a public key file (a peer's node.pub), to compare it with the
    /// fingerprint its operator reads from `shoal keys show` before pinning it.
    Fingerprint {
        /// The file.
        file: PathBuf,
    },
    /// List the pinned peers with their fingerprints.
    List {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Pin a peer's key (replacing any pin for that name): strict mode needs this; in TOFU
    /// mode it pre-empts first contact.
    Pin {
        #[command(flatten)]
        dirs: Dirs,
        /// The peer's node name (`name@host`).
        peer: String,
        /// The peer's public key file (its node.pub).
        file: PathBuf,
    },
    /// Remove a peer's pin (after the peer rotated its identity; TOFU re-pins on next contact).
    Unpin {
        #[command(flatten)]
        dirs: Dirs,
        /// The peer's node name.
        peer: String,
    },
    /// Replace the identity key pair; the old pair goes to `backups/<UTC timestamp>/`.
    RotateIdentity {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Replace the TLS key and certificate; the old pair goes to `backups/<UTC timestamp>/`
    /// of the certificate directory. Takes effect when the node starts.
    RotateCert {
        #[command(flatten)]
        dirs: Dirs,
        /// Node name (`name@host`), written into the new certificate.
        #[arg(long)]
        name: String,
    },
}

/// Runs one key command.
pub(crate) fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Init { dirs, name } => init(&dirs, &name),
        KeysCommand::Show { dirs } => show(&dirs),
        KeysCommand::Fingerprint { file } => {
            let key = read_public_key(&file)?;
            println!("{}", fingerprint(&key));
            Ok(())
        }
        KeysCommand::List { dirs } => list(&dirs),
        KeysCommand::Pin { dirs, peer, file } => pin(&dirs, &peer, &file),
        KeysCommand::Unpin { dirs, peer } => unpin(&dirs, &peer),
        KeysCommand::RotateIdentity { dirs } => rotate_identity(&dirs),
        KeysCommand::RotateCert { dirs, name } => rotate_cert(&dirs, &name),
    }
}

fn node_name(text: &str) -> anyhow::Result<NodeName> {
    NodeName::parse(text).with_context(|| format!("{text:?} is not a node name (name@host)"))
}

fn init(dirs: &Dirs, name: &str) -> anyhow::Result<()> {
    node_name(name)?;
    let key_dir = KeyDir::new(&dirs.key_dir);
    let _lock = key_dir.lock()?;
    let identity = key_dir.load_or_generate()?;
    TrustStore::open(key_dir.trusted_dir())?;
    let tls = TlsMaterial::load_or_generate(&dirs.cert_dir, name)?;
    println!(
        "identity  {}  {}",
        identity.fingerprint(),
        dirs.key_dir.join(PUBLIC_KEY_FILE_NAME).display()
    );
    println!(
        "tls       {}  {}",
        fingerprint(&tls.public_key()),
        dirs.cert_dir.join(CERT_FILE_NAME).display()
    );
    Ok(())
}

fn show(dirs: &Dirs) -> anyhow::Result<()> {
    let public = dirs.key_dir.join(PUBLIC_KEY_FILE_NAME);
    if !public.exists() {
        bail!(
            "{} does not exist: run `shoal keys init --name <name@host>` first",
            public.display()
        );
    }
    println!("identity  {}  {}", fingerprint(&read_public_key(&public)?), public.display());
    let cert = dirs.cert_dir.join(CERT_FILE_NAME);
    if cert.exists() {
        let key = read_certificate_key(&cert)?;
        println!("tls       {}  {}", fingerprint(&key), cert.display());
    } else {
        println!("tls       (none yet: {} is generated at first start)", cert.display());
    }
    Ok(())
}

fn list(dirs: &Dirs) -> anyhow::Result<()> {
    let key_dir = KeyDir::new(&dirs.key_dir);
    let _lock = key_dir.lock()?;
    let (store, skipped) = TrustStore::open(key_dir.trusted_dir())?;
    for pin in store.list() {
        println!("{}  {}", pin.fingerprint, pin.name);
    }
    for file in skipped {
        println!("skipped  {}: {}", file.path.display(), file.reason);
    }
    Ok(())
}

fn pin(dirs: &Dirs, peer: &str, file: &Path) -> anyhow::Result<()> {
    let peer = node_name(peer)?;
    let key = read_public_key(file)?;
    let key_dir = KeyDir::new(&dirs.key_dir);
    let _lock = key_dir.lock()?;
    let (store, _) = TrustStore::open(key_dir.trusted_dir())?;
    let previous = store.get(&peer);
    store.store(&peer, &key)?;
    match previous {
        Some(old) if old != key => {
            println!("pinned {peer}: {} (replaced {})", fingerprint(&key), fingerprint(&old));
        }
        _ => println!("pinned {peer}: {}", fingerprint(&key)),
    }
    Ok(())
}

fn unpin(dirs: &Dirs, peer: &str) -> anyhow::Result<()> {
    let peer = node_name(peer)?;
    let key_dir = KeyDir::new(&dirs.key_dir);
    let _lock = key_dir.lock()?;
    let (store, _) = TrustStore::open(key_dir.trusted_dir())?;
    if store.delete(&peer)? {
        println!("unpinned {peer}");
    } else {
        println!("{peer} was not pinned");
    }
    Ok(())
}

fn rotate_identity(dirs: &Dirs) -> anyhow::Result<()> {
    let key_dir = KeyDir::new(&dirs.key_dir);
    let _lock = key_dir.lock()?;
    let rotated = key_dir.rotate()?;
    println!("old     {}", rotated.old_fingerprint);
    println!("new     {}", rotated.new_fingerprint);
    println!("backup  {}", rotated.backup_dir.display());
    Ok(())
}

fn rotate_cert(dirs: &Dirs, name: &str) -> anyhow::Result<()> {
    node_name(name)?;
    let rotated = TlsMaterial::rotate(&dirs.cert_dir, name)?;
    println!("old     {}", fingerprint(&rotated.old_public_key));
    println!("new     {}", fingerprint(&rotated.new_public_key));
    println!("backup  {}", rotated.backup_dir.display());
    println!("restart the node to use the new certificate");
    Ok(())
}
