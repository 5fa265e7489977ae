//! `Queue` over a live SQS FIFO queue and its dead-letter queue, for the queue
//! conformance suite: each trait call is carried out with zru's own SQS calls
//! (`zru::aws::sqs`: send in batches of 10, receive, delete, change visibility,
//! dead-letter with the reason) and message bodies (`zru::aws::sqs_queue::Body`), as
//! the watcher and the updater's drain do. What the updater does, this does: a failure
//! on the last allowed receive (or a permanent one) is copied to the dead-letter queue
//! with its reason and deleted; a transient one is made visible again after its delay.
//!
//! SQS has no per-group receive: a receive for one group keeps the messages of other
//! groups it brought (they are in flight on SQS) for the next receive of their group,
//! as `SqsBatch` keeps a Lambda batch. Dead letters are read by moving them out of the
//! dead-letter queue into this object; `replay` sends them back to the queue as new
//! messages, as `start-message-move-task` does (moto does not implement it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use zru::aws::sqs::{self, Outgoing, Received};
use zru::aws::sqs_queue::Body;
use zru::pipeline::event::now_us;
use zru::pipeline::queue::{
    DeadLetter, Failed, GroupStats, Message, NewMessage, Queue, QueueError, Receipt, Retry, Sent,
};

pub struct SqsQueue {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
    url: String,
    dead_letter_url: String,
    max_receives: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Received from SQS for another group, not handed out yet.
    buffer: Vec<Received>,
    /// Message ids of SQS (strings) as the trait's numbers, in the order first seen.
    ids: HashMap<String, i64>,
    /// Every receive handed out: a receipt's token is its index.
    receives: Vec<Received>,
    /// Dead letters moved out of the dead-letter queue, with their bodies.
    dead: Vec<(DeadLetter, String)>,
    replays: u64,
}

fn error(url: &str, reason: impl std::fmt::Display) -> QueueError {
    QueueError::Body {
        path: url.to_string(),
        id: 0,
        reason: reason.to_string(),
    }
}

impl SqsQueue {
    /// Creates `NAME.fifo` and its dead-letter queue `NAME-dlq.fifo` (redrive after
    /// `max_receives`), as `deploy/template.yaml` does, and reads them back with
    /// `sqs::queue_info` as the updater does.
    pub fn create(client: &aws_sdk_sqs::Client, name: &str, max_receives: u32) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let create = |name: String, redrive: Option<String>| {
            let mut request = client
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::VisibilityTimeout, "30");
            if let Some(policy) = redrive {
                request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
            }
            runtime
                .block_on(request.send())
                .expect("create queue")
                .queue_url
                .expect("queue url")
        };
        create(format!("{name}-dlq.fifo"), None);
        let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}-dlq.fifo");
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives
        });
        let url = create(format!("{name}.fifo"), Some(policy.to_string()));
        let info = runtime
            .block_on(sqs::queue_info(client, &url))
            .expect("queue info");
        assert!(info.fifo, "{url} is not FIFO");
        assert_eq!(info.max_receive_count, Some(max_receives));
        Self {
            runtime,
            client: client.clone(),
            url,
            dead_letter_url: info.dead_letter_url.expect("a dead-letter queue"),
            max_receives,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }

    fn body(&self, received: &Received) -> Result<Body, QueueError> {
        serde_json::from_str(&received.body).map_err(|e| error(&self.url, e))
    }

    /// Hands out `received` as the trait's message.
    fn hand_out(&self, state: &mut State, received: Received) -> Result<Message, QueueError> {
        let next = state.ids.len() as i64 + 1;
        let id = *state.ids.entry(received.message_id.clone()).or_insert(next);
        let token = state.receives.len() as i64;
        let message = Message {
            id,
            group: received.group.clone(),
            receipt: Receipt { id, token },
            receive_count: received.receive_count,
            event: self.body(&received)?.event,
        };
        state.receives.push(received);
        Ok(message)
    }

    fn received(&self, receipt: Receipt) -> Result<Received, QueueError> {
        self.state()
            .receives
            .get(receipt.token as usize)
            .cloned()
            .ok_or_else(|| error(&self.url, format!("no receipt {receipt:?}")))
    }

    /// Moves what the dead-letter queue holds into `state.dead`.
    fn collect_dead_letters(&self) -> Result<(), QueueError> {
        loop {
            let response = self
                .runtime
                .block_on(
                    self.client
                        .receive_message()
                        .queue_url(&self.dead_letter_url)
                        .max_number_of_messages(10)
                        .visibility_timeout(30)
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .message_attribute_names("All")
                        .send(),
                )
                .map_err(|e| error(&self.dead_letter_url, e))?;
            let messages = response.messages();
            if messages.is_empty() {
                return Ok(());
            }
            let mut handles = Vec::new();
            let mut state = self.state();
            for m in messages {
                let body = m.body().unwrap_or_default().to_string();
                let event = serde_json::from_str::<Body>(&body)
                    .map_err(|e| error(&self.dead_letter_url, e))?
                    .event;
                let attribute = |name: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value())
                        .map(str::to_string)
                };
                let group = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap_or_default();
                let message_id = m.message_id().unwrap_or_default();
                // Moved by the updater: the receive count it saw; moved by the redrive
                // policy (the same message id): the count of its last receive here.
                let receive_count = attribute("zru_receive_count")
                    .and_then(|c| c.parse().ok())
                    .or_else(|| {
                        state
                            .receives
                            .iter()
                            .rev()
                            .find(|r| r.message_id == message_id)
                            .map(|r| r.receive_count)
                    })
                    .unwrap_or(0);
                let next = state.ids.len() as i64 + 1;
                let id = *state.ids.entry(message_id.to_string()).or_insert(next);
                state.dead.push((
                    DeadLetter {
                        id,
                        group,
                        receive_count,
                        last_error: attribute(sqs::REASON_ATTRIBUTE),
                        event,
                    },
                    body,
                ));
                handles.push(m.receipt_handle().unwrap_or_default().to_string());
            }
            drop(state);
            self.runtime
                .block_on(sqs::delete(&self.client, &self.dead_letter_url, &handles))
                .map_err(|e| error(&self.dead_letter_url, e))?;
        }
    }
}

impl Queue for SqsQueue {
    fn send(&self, messages: &[NewMessage]) -> Result<Vec<Sent>, QueueError> {
        let outgoing = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let body = Body {
                    event: m.event.clone(),
                    arrival: now_us() + i as i64,
                };
                Ok(Outgoing {
                    group: m.group.clone(),
                    dedup_id: m.dedup_id.clone(),
                    body: serde_json::to_string(&body).map_err(|e| error(&self.url, e))?,
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        self.runtime
            .block_on(sqs::send(&self.client, &self.url, &outgoing))
            .map_err(|e| error(&self.url, e))?;
        // SQS accepts a duplicate as it accepts any message: no way to tell.
        Ok((0..messages.len() as i64).map(Sent::Enqueued).collect())
    }

    fn receive(
        &self,
        group: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let mut state = self.state();
        let mut out = Vec::new();
        let buffered = std::mem::take(&mut state.buffer);
        for received in buffered {
            if received.group == group && out.len() < max {
                out.push(received);
            } else {
                state.buffer.push(received);
            }
        }
        // Messages of the group were buffered: the group is in flight on SQS, nothing
        // more of it can come.
        while out.is_empty() {
            let got = self
                .runtime
                .block_on(sqs::receive(
                    &self.client,
                    &self.url,
                    max.min(sqs::MAX_BATCH),
                    0,
                    visibility.as_secs() as i32,
                ))
                .map_err(|e| error(&self.url, e))?;
            if got.is_empty() {
                break;
            }
            for received in got {
                if received.group == group && out.len() < max {
                    out.push(received);
                } else {
                    state.buffer.retain(|b| b.message_id != received.message_id);
                    state.buffer.push(received);
                }
            }
        }
        out.into_iter()
            .map(|r| self.hand_out(&mut state, r))
            .collect()
    }

    /// SQS makes a dead consumer's messages visible again itself (visibility timeout).
    fn recover(&self, _group: &str) -> Result<u64, QueueError> {
        Ok(0)
    }

    fn ack(&self, receipts: &[Receipt]) -> Result<u64, QueueError> {
        let mut acked = 0;
        for receipt in receipts {
            let handle = self.received(*receipt)?.receipt_handle;
            if self
                .runtime
                .block_on(sqs::delete(&self.client, &self.url, &[handle]))
                .is_ok()
            {
                acked += 1;
            }
        }
        Ok(acked)
    }

    fn fail(&self, receipt: Receipt, error_text: &str, retry: Retry) -> Result<Failed, QueueError> {
        let received = self.received(receipt)?;
        let delay = match retry {
            Retry::After(delay) if received.receive_count < self.max_receives => delay,
            _ => {
                self.runtime
                    .block_on(sqs::dead_letter(
                        &self.client,
                        &self.dead_letter_url,
                        &received,
                        error_text,
                    ))
                    .map_err(|e| error(&self.dead_letter_url, e))?;
                self.runtime
                    .block_on(sqs::delete(
                        &self.client,
                        &self.url,
                        &[received.receipt_handle],
                    ))
                    .map_err(|e| error(&self.url, e))?;
                return Ok(Failed::DeadLettered);
            }
        };
        let seconds = delay.as_secs_f64().ceil() as i32;
        match self.runtime.block_on(sqs::retry_after(
            &self.client,
            &self.url,
            &received.receipt_handle,
            seconds,
        )) {
            Ok(()) => Ok(Failed::Retry),
            Err(_) => Ok(Failed::Stale),
        }
    }

    fn groups(&self) -> Result<Vec<String>, QueueError> {
        Err(error(&self.url, "an SQS queue does not list its groups"))
    }

    fn stats(&self) -> Result<Vec<GroupStats>, QueueError> {
        Err(error(&self.url, "an SQS queue has no counts per group"))
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.collect_dead_letters()?;
        Ok(self.state().dead.iter().map(|(d, _)| d.clone()).collect())
    }

    fn replay(&self, ids: &[i64]) -> Result<u64, QueueError> {
        self.collect_dead_letters()?;
        let mut state = self.state();
        let (chosen, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.dead)
            .into_iter()
            .partition(|(d, _)| ids.is_empty() || ids.contains(&d.id));
        state.dead = kept;
        let mut outgoing = Vec::new();
        for (dead, body) in &chosen {
            state.replays += 1;
            outgoing.push(Outgoing {
                group: dead.group.clone(),
                dedup_id: format!("replay-{}-{}", dead.id, state.replays),
                body: body.clone(),
            });
        }
        drop(state);
        self.runtime
            .block_on(sqs::send(&self.client, &self.url, &outgoing))
            .map_err(|e| error(&self.url, e))?;
        Ok(chosen.len() as u64)
    }
}
