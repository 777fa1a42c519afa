//! `cargo xtask docker-build`: the statically linked `raftkv-server` and
//! `raftkv` binaries, staged into the Docker build context `deploy/bin/`
//! (the image is `FROM scratch`: there is no base image to build in, and no
//! libc to link against at run time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::args::Flags;
use crate::process;

/// The binaries the image holds.
const BINARIES: [&str; 2] = ["raftkv-server", "raftkv"];

/// A cold release build of the server takes minutes on two cores; this only
/// stops a wedged build from hanging the task forever.
const CARGO_LIMIT: Duration = Duration::from_secs(60 * 60);
/// Building the image only copies the staged binaries.
const IMAGE_LIMIT: Duration = Duration::from_secs(10 * 60);

/// Variables `cargo run` sets for the program it runs (besides `CARGO_PKG_*`).
const PACKAGE_VARS: [&str; 7] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR",
];

/// The ELF program header type of a dynamic loader's path.
const PT_INTERP: u32 = 3;

/// The flags of `cargo xtask docker-build`.
pub struct DockerBuildArgs {
    /// Also build the image with this tag.
    pub image: Option<String>,
}

impl DockerBuildArgs {
    /// Parse `--image TAG`.
    pub fn parse(args: &[&str]) -> Result<Self> {
        let flags = Flags::parse(args, &["--image"])?;
        Ok(Self { image: flags.get("--image")? })
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}

/// The Docker build context: `deploy/` (its Dockerfile copies `bin/*`).
pub fn context_dir() -> Result<PathBuf> {
    Ok(workspace_root()?.join("deploy"))
}

/// The target directory of the static build: `$XTASK_STATIC_TARGET_DIR`,
/// else `$HOME/.cache/raftkv-target-static`. (Not a `RAFTKV_*` name: the
/// server reads every `RAFTKV_*` variable as configuration and refuses
/// unknown ones, so one set for the build would stop the servers the tests
/// start.) It is kept apart from the
/// usual target directory because the two builds use different `RUSTFLAGS`
/// and would otherwise rebuild each other's dependencies.
fn static_target_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XTASK_STATIC_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("raftkv-target-static")),
        None => Ok(workspace_root()?.join("target").join("static")),
    }
}

/// The host's glibc target triple. The build names it explicitly so that
/// `+crt-static` applies to the binaries only, not to build scripts and
/// proc macros (which must stay dynamic).
fn host_triple() -> Result<String> {
    if !cfg!(target_os = "linux") {
        bail!("the Docker image is built from Linux binaries; run docker-build on a Linux host");
    }
    Ok(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
}

/// Build the static binaries (release, line tables stripped); the directory
/// that holds them.
pub fn build_static() -> Result<PathBuf> {
    let root = workspace_root()?;
    let target_dir = static_target_dir()?;
    let triple = host_triple()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", &triple, "-p", "raftkv-server", "--bins"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // Takes precedence over RUSTFLAGS if the caller's environment has it.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // The workspace's release profile keeps line tables for profiling;
        // the image does not need them (they triple the binaries' size).
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    // `cargo run` hands xtask the variables that describe xtask's own
    // package; some build scripts (ring's) rerun when those change, which
    // would make this build and the same build from a shell evict each other.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || PACKAGE_VARS.contains(&key.as_ref()) {
            cmd.env_remove(key.as_ref());
        }
    }
    println!("docker-build: {} (target dir {})", process::display(&cmd), target_dir.display());
    process::inherit(&mut cmd, CARGO_LIMIT)?;
    let dir = target_dir.join(&triple).join("release");
    for name in BINARIES {
        check_static(&dir.join(name))?;
    }
    Ok(dir)
}

/// Refuse a dynamically linked executable: in a `scratch` image it would
/// fail with a baffling "no such file or directory" (its loader is missing).
fn check_static(path: &Path) -> Result<()> {
    let elf = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| elf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at: usize| elf.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes);
    // A 64-bit little-endian ELF file.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        bail!("{} is not a 64-bit little-endian ELF executable", path.display());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        bail!("{}: truncated ELF header", path.display());
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)? + i * usize::from(phentsize);
        match u32_at(at) {
            Some(PT_INTERP) => bail!(
                "{} is dynamically linked (it names a program interpreter); build it with \
                 RUSTFLAGS=\"-C target-feature=+crt-static\" and an explicit --target",
                path.display()
            ),
            Some(_) => {}
            None => bail!("{}: truncated ELF program headers", path.display()),
        }
    }
    Ok(())
}

/// Copy the binaries from `built` into the build context's `bin/`; the context.
pub fn stage(built: &Path) -> Result<PathBuf> {
    let context = context_dir()?;
    let bin = context.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    for name in BINARIES {
        let (from, to) = (built.join(name), bin.join(name));
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(context)
}

/// Build the image of `context` as `tag` with the classic builder (there is
/// no registry to fetch BuildKit's frontend from).
///
/// The image `tag` named before, if new binaries replaced it, is removed
/// unless something else still uses it, so rebuilds do not pile up
/// untagged images.
pub fn build_image(context: &Path, tag: &str) -> Result<()> {
    let before = image_id(tag);
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0").arg("build").args(["--quiet", "--tag", tag]).arg(context);
    println!("docker-build: {}", process::display(&cmd));
    process::checked(&mut cmd, None, IMAGE_LIMIT)?;
    if let Some(old) = before.filter(|old| image_id(tag).as_ref() != Some(old)) {
        // Refused (harmlessly) while another tag or a container uses it.
        let mut rmi = Command::new("docker");
        rmi.args(["image", "rm", &old]);
        let _ = process::capture(&mut rmi, None, IMAGE_LIMIT);
    }
    Ok(())
}

/// The id of image `tag`, if it exists.
fn image_id(tag: &str) -> Option<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["image", "inspect", "--format", "{{.Id}}", tag]);
    let id = process::checked(&mut cmd, None, IMAGE_LIMIT).ok()?;
    Some(id.trim().to_string()).filter(|id| !id.is_empty())
}

/// `cargo xtask docker-build [--image TAG]`.
pub fn run(args: &DockerBuildArgs) -> Result<()> {
    let built = build_static()?;
    let context = stage(&built)?;
    println!("docker-build: staged {} into {}", BINARIES.join(" and "), context.join("bin").display());
    match &args.image {
        Some(tag) => {
            build_image(&context, tag)?;
            println!("docker-build: built image {tag}");
        }
        None => println!("docker-build: next, `docker-compose -f deploy/docker-compose.yml up --build`"),
    }
    Ok(())
}
