//! Compiles `proto/` at build time without a system `protoc`: protox parses
//! the schema into a descriptor set, prost-build generates the types and
//! pbjson-build generates serde impls that follow the proto3 JSON mapping.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/leadflow/v1/events.proto",
        "proto/leadflow/v1/commands.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("leadflow_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .btree_map(["."])
        .compile_protos(&protos, &["proto"])?;

    let descriptor_bytes = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .btree_map(["."])
        .build(&[".leadflow"])?;
    Ok(())
}
