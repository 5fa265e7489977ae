//! The store backend conformance suite (`tests/conformance/store.rs`) against both
//! backends: a local directory, and S3 through object_store on a moto server started
//! from the project's venv (a failure, not a skip, if moto is missing).

mod conformance;

use conformance::moto::MotoServer;
use conformance::store::{run_all, Backend};
use zru::store::StoreLocation;

#[test]
fn local_directory_stores_conform() {
    let dir = tempfile::tempdir().unwrap();
    let location = |name: &str| StoreLocation::Local(dir.path().join(format!("{name}.zarr")));
    run_all(&Backend {
        name: "local",
        location: &location,
        known_key_encoding_bug: false,
    });
}

#[test]
fn s3_stores_on_moto_conform() {
    let moto = MotoServer::start();
    let bucket = "zru-conformance";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients = zru::aws::sdk::Clients::new(&runtime.block_on(zru::aws::sdk::sdk_config()));
    runtime
        .block_on(clients.s3.create_bucket().bucket(bucket).send())
        .unwrap();
    let location = |name: &str| StoreLocation::S3 {
        bucket: bucket.into(),
        prefix: format!("stores/{name}.zarr"),
    };
    run_all(&Backend {
        name: "s3 (moto)",
        location: &location,
        known_key_encoding_bug: true,
    });
    drop(moto);
}
