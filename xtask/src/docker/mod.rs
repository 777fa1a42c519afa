//! The Docker flow of `deploy/`: static binaries and the `FROM scratch` image
//! (`docker-build`), and the compose cluster test (`docker-test`).

pub mod build;
pub mod test;
