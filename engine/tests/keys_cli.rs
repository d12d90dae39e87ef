//! `shoal keys …` end to end: the binary on scratch directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shoal_transport::auth::{fingerprint, read_public_key, KeyDir};

struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("shoal-keys-cli-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch dir");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shoal(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal")).current_dir(cwd).args(args).output().expect("runs")
}

fn ok(cwd: &Path, args: &[&str]) -> String {
    let output = shoal(cwd, args);
    assert!(output.status.success(), "shoal {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn fails(cwd: &Path, args: &[&str]) -> String {
    let output = shoal(cwd, args);
    assert_eq!(output.status.code(), Some(1), "shoal {args:?} should fail");
    String::from_utf8(output.stderr).expect("utf-8")
}

#[test]
fn init_show_pin_list_unpin_and_rotate() {
    let scratch = Scratch::new("flow");
    let dir = scratch.0.as_path();
    let shown = fails(dir, &["keys", "show"]);
    assert!(shown.contains("shoal keys init"), "{shown}");

    let init = ok(dir, &["keys", "init", "--name", "a@h1"]);
    let identity = read_public_key(&dir.join("data/keys/node.pub")).expect("node.pub");
    assert!(init.contains(&fingerprint(&identity).to_string()), "{init}");
    assert_eq!(ok(dir, &["keys", "show"]).lines().next(), init.lines().next());

    // A peer's node.pub, pinned by name.
    ok(dir, &["keys", "init", "--key-dir", "b/keys", "--cert-dir", "b/quic", "--name", "b@h2"]);
    let peer = read_public_key(&dir.join("b/keys/node.pub")).expect("peer key");
    let printed = ok(dir, &["keys", "fingerprint", "b/keys/node.pub"]);
    assert_eq!(printed.trim(), fingerprint(&peer).to_string());
    ok(dir, &["keys", "pin", "b@h2", "b/keys/node.pub"]);
    let listed = ok(dir, &["keys", "list"]);
    assert_eq!(listed.trim(), format!("{}  b@h2", fingerprint(&peer)));
    assert!(dir.join("data/keys/trusted/b@h2.pub").exists());
    assert!(ok(dir, &["keys", "unpin", "b@h2"]).contains("unpinned b@h2"));
    assert_eq!(ok(dir, &["keys", "list"]), "");

    // Identity rotation: new key on disk, old one in the backup.
    let rotated = ok(dir, &["keys", "rotate-identity"]);
    let new = read_public_key(&dir.join("data/keys/node.pub")).expect("new node.pub");
    assert_ne!(new, identity);
    assert!(rotated.contains(&fingerprint(&new).to_string()), "{rotated}");
    let backup =
        rotated.lines().find_map(|line| line.strip_prefix("backup  ")).expect("backup line");
    assert_eq!(read_public_key(&dir.join(backup).join("node.pub")).expect("backup"), identity);

    let rotated = ok(dir, &["keys", "rotate-cert", "--name", "a@h1"]);
    assert!(rotated.contains("restart the node"), "{rotated}");
}

#[test]
fn bad_input_and_a_running_node_are_refused_with_the_reason() {
    let scratch = Scratch::new("refusals");
    let dir = scratch.0.as_path();
    ok(dir, &["keys", "init", "--name", "a@h1"]);
    assert!(
        fails(dir, &["keys", "pin", "nope", "data/keys/node.pub"]).contains("is not a node name")
    );
    let missing = fails(dir, &["keys", "pin", "b@h2", "missing.pub"]);
    assert!(missing.contains("missing.pub"), "{missing}");
    // A node running on the directory holds its lock.
    let _running = KeyDir::new(dir.join("data/keys")).lock().expect("lock");
    let locked = fails(dir, &["keys", "rotate-identity"]);
    assert!(locked.contains("in use by another shoal process"), "{locked}");
}
