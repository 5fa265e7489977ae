//! The `tracing` layer that writes EMF documents ([`super::metrics::emit`]) to stdout
//! verbatim: CloudWatch Logs extracts metrics only from a log line that is the JSON
//! document itself, not from a log line that wraps it.

use std::fmt::Debug;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Writes each event's message on its own line of stdout.
pub(crate) struct EmfLines;

/// The `message` field of an event.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for EmfLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        // One write of the whole line, so lines of concurrent threads do not mix; a
        // closed stdout loses the metrics, not the invocation.
        let mut line = message.0.into_bytes();
        line.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&line);
    }
}
