//! Generates the gRPC code from `proto/` with the protoc shipped inside `protoc-bin-vendored`, so
//! no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc)
    };
    println!("cargo:rerun-if-changed=proto/simplekv.proto");
    tonic_prost_build::configure()
        .bytes(".simplekv")
        .compile_protos(&["proto/simplekv.proto"], &["proto"])?;
    Ok(())
}
