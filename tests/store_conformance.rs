//! The store backend conformance suite (`tests/conformance/store.rs`) against both
//! backends: a local directory, and S3 through object_store on a moto server started
//! from the project's venv (a failure, not a skip, if moto is missing).

mod conformance;

use std::path::Path;

use conformance::moto::MotoServer;
use conformance::store::{run_all, Backend};
use zru::store::StoreLocation;

/// Every file under `dir`, as a path relative to `root` with `/` between components.
#[allow(clippy::unwrap_used)] // test code outside a #[test] function
fn files_under(root: &Path, dir: &Path, names: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, names);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_str().unwrap().to_string())
                .collect();
            names.push(parts.join("/"));
        }
    }
}

#[test]
fn local_directory_stores_conform() {
    let dir = tempfile::tempdir().unwrap();
    let location = |name: &str| StoreLocation::Local(dir.path().join(format!("{name}.zarr")));
    let object_names = |location: &StoreLocation| {
        let root = location.local_path().unwrap();
        let mut names = Vec::new();
        files_under(root, root, &mut names);
        names.sort();
        names
    };
    run_all(&Backend {
        name: "local",
        location: &location,
        object_names: &object_names,
        refuses_control_characters: false,
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
    // The object names as S3 holds them, listed by the AWS SDK (not object_store).
    let object_names = |location: &StoreLocation| {
        let StoreLocation::S3 { bucket, prefix } = location else {
            unreachable!()
        };
        let prefix = format!("{prefix}/");
        let pages: Vec<_> = runtime.block_on(async {
            clients
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
        });
        let mut names: Vec<String> = pages
            .iter()
            .flat_map(|page| page.contents())
            .map(|object| {
                object
                    .key()
                    .unwrap()
                    .strip_prefix(&prefix)
                    .unwrap()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    run_all(&Backend {
        name: "s3 (moto)",
        location: &location,
        object_names: &object_names,
        refuses_control_characters: true,
    });
    drop(moto);
}
