//! Compiles `proto/raftkv/v1/raftkv.proto` with protox (pure Rust: no system
//! `protoc`) into prost messages, plus tonic stubs with the `grpc` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/raftkv/v1/raftkv.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    #[cfg(feature = "grpc")]
    {
        tonic_prost_build::configure().build_client(true).build_server(true).bytes(".").compile_fds(fds)?;
    }
    #[cfg(not(feature = "grpc"))]
    {
        prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    }
    Ok(())
}
