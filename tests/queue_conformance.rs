//! The queue conformance suite (`tests/conformance/queue.rs`) against both queue
//! implementations: the embedded SQLite queue, and SQS FIFO on a moto server started
//! from the project's venv (a failure, not a skip, if moto is missing).

mod conformance;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conformance::moto::MotoServer;
use conformance::queue::{run_all, Backend, Caps};
use conformance::sqs::SqsQueue;
use zru::pipeline::queue::Queue;
use zru::pipeline::{QueueOptions, SqliteQueue};

#[test]
fn sqlite_queue_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    let open = |max_receives: u32| -> Box<dyn Queue> {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let options = QueueOptions {
            max_receives,
            dedup_window: Duration::from_secs(300),
        };
        let path = dir.path().join(format!("q{n}/queue.sqlite"));
        Box::new(SqliteQueue::open(&path, options).unwrap())
    };
    run_all(&Backend {
        name: "sqlite",
        open: &open,
        caps: Caps {
            reports_duplicates: true,
            dedup_outlives_delete: true,
            refuses_stale_receipts: true,
            redelivers_in_order: true,
            recovers_in_flight: true,
            lists_groups: true,
            max_receive_batch: usize::MAX,
        },
    });
}

#[test]
fn sqs_queue_on_moto_conforms() {
    let moto = MotoServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = runtime.block_on(zru::aws::sdk::sdk_config());
    let client = aws_sdk_sqs::Client::new(&config);
    let count = AtomicUsize::new(0);
    let open = |max_receives: u32| -> Box<dyn Queue> {
        let n = count.fetch_add(1, Ordering::SeqCst);
        Box::new(SqsQueue::create(
            &client,
            &format!("zru-conformance-{n}"),
            max_receives,
        ))
    };
    run_all(&Backend {
        name: "sqs (moto)",
        open: &open,
        caps: Caps {
            reports_duplicates: false,
            // moto deduplicates only against messages still in the queue.
            dedup_outlives_delete: false,
            refuses_stale_receipts: false,
            // moto: several messages of a group in flight come back out of order.
            redelivers_in_order: false,
            recovers_in_flight: false,
            lists_groups: false,
            max_receive_batch: 10,
        },
    });
    drop(moto);
}
