//! The events stream and the command work-queues.

use std::fmt;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker as JsAcker};
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{NatsBus, escape, map_err};
use crate::bus::{
    Acker, Command, CommandQueue, CommandSubscription, Delivery, EventBus, EventSubscription,
    SubscribeOptions, Subscription, check_name, check_queue_name, event_key,
};
use crate::error::{Error, Result};
use crate::event::Event;

/// The header carrying a delivery's ordering key.
const KEY_HEADER: &str = "Cs-Key";
/// Idle heartbeat of the pull requests: a missing server or consumer shows within twice this.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long one pull request waits for messages before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(30);

impl NatsBus {
    async fn publish_on(
        &self,
        subject: String,
        key: &str,
        msg_id: Option<String>,
        payload: Bytes,
    ) -> Result<u64> {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, key);
        if let Some(id) = msg_id {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| map_err(&self.client, "publish", e))?
            .await
            .map_err(|e| map_err(&self.client, "publish", e))?;
        Ok(ack.sequence)
    }

    async fn open<T: Send + 'static>(
        &self,
        stream: &stream::Stream,
        config: pull::Config,
        decode: fn(&Bytes, &str) -> Result<T>,
        options: &SubscribeOptions,
    ) -> Result<Box<dyn Subscription<T>>> {
        let name = config.durable_name.clone().unwrap_or_default();
        let consumer = match stream.create_consumer(config).await {
            Ok(c) => c,
            // An existing durable whose settings cannot change: use it as it is.
            Err(e) => stream
                .get_consumer(&name)
                .await
                .map_err(|_| map_err(&self.client, "create a consumer", e))?,
        };
        let mut sub = NatsSubscription {
            client: self.client.clone(),
            stream: stream.clone(),
            name,
            batch: options.max_in_flight.clamp(1, 256),
            consumer: Some(consumer),
            messages: None,
            decode,
        };
        sub.messages = Some(sub.pull().await?);
        Ok(Box::new(sub))
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, event: &Event) -> Result<u64> {
        let key = event_key(event);
        let subject = match key.split_once(':') {
            Some((kind, id)) => format!("{}.events.{kind}.{}", self.prefix, escape(id)),
            None => format!("{}.events.{}", self.prefix, escape(&key)),
        };
        let payload = serde_json::to_vec(event).map_err(|e| Error::Backend {
            backend: super::BACKEND,
            source: Box::new(e),
        })?;
        self.publish_on(subject, &key, Some(event.id.to_string()), payload.into())
            .await
    }

    async fn subscribe(
        &self,
        durable: &str,
        options: &SubscribeOptions,
    ) -> Result<EventSubscription> {
        check_name("durable subscription name", durable)?;
        options.check()?;
        let config = pull::Config {
            durable_name: Some(durable.to_owned()),
            description: Some("omnidesk node subscription".into()),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_ack_pending: i64::try_from(options.max_in_flight).unwrap_or(i64::MAX),
            ..Default::default()
        };
        self.open(&self.events, config, decode_event, options).await
    }

    async fn delete_subscription(&self, durable: &str) -> Result<bool> {
        check_name("durable subscription name", durable)?;
        delete_consumer(self, &self.events, durable).await
    }
}

async fn delete_consumer(bus: &NatsBus, stream: &stream::Stream, name: &str) -> Result<bool> {
    match stream.delete_consumer(name).await {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            jetstream::stream::ConsumerErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(map_err(&bus.client, "delete a consumer", e)),
        },
    }
}

fn decode_event(payload: &Bytes, _key: &str) -> Result<Event> {
    serde_json::from_slice(payload)
        .map_err(|e| Error::invalid(format!("an event that does not decode: {e}")))
}

/// A command is its JSON body, its key in a header.
fn decode_command(payload: &Bytes, key: &str) -> Result<Command> {
    let body = serde_json::from_slice(payload)
        .map_err(|e| Error::invalid(format!("a command that does not decode: {e}")))?;
    Ok(Command::new(key, body))
}

#[async_trait]
impl CommandQueue for NatsBus {
    async fn send(&self, queue: &str, command: &Command) -> Result<u64> {
        check_queue_name(queue)?;
        let payload = serde_json::to_vec(&command.body).map_err(|e| Error::Backend {
            backend: super::BACKEND,
            source: Box::new(e),
        })?;
        let subject = format!("{}.commands.{}", self.prefix, queue_token(queue));
        self.publish_on(subject, &command.key, None, payload.into())
            .await
    }

    async fn consume(
        &self,
        queue: &str,
        options: &SubscribeOptions,
    ) -> Result<CommandSubscription> {
        check_queue_name(queue)?;
        options.check()?;
        let token = queue_token(queue);
        let config = pull::Config {
            durable_name: Some(token.clone()),
            description: Some("omnidesk command queue".into()),
            filter_subject: format!("{}.commands.{token}", self.prefix),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_ack_pending: i64::try_from(options.max_in_flight).unwrap_or(i64::MAX),
            ..Default::default()
        };
        self.open(&self.commands, config, decode_command, options)
            .await
    }
}

/// A queue's name as one subject token and consumer name: `.` becomes `=` (which queue names do
/// not have, so the mapping is one to one).
fn queue_token(queue: &str) -> String {
    queue.replace('.', "=")
}

/// A durable pull consumer read as a [`Subscription`].
struct NatsSubscription<T> {
    client: async_nats::Client,
    stream: stream::Stream,
    name: String,
    batch: usize,
    consumer: Option<PullConsumer>,
    messages: Option<pull::Stream>,
    decode: fn(&Bytes, &str) -> Result<T>,
}

impl<T> fmt::Debug for NatsSubscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSubscription")
            .field("stream", &self.stream.cached_info().config.name)
            .field("name", &self.name)
            .field("open", &self.messages.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> NatsSubscription<T> {
    /// Starts pulling (re-binding to the consumer when the last stream ended).
    async fn pull(&mut self) -> Result<pull::Stream> {
        let consumer = match self.consumer.take() {
            Some(c) => c,
            None => {
                use async_nats::jetstream::context::ConsumerInfoErrorKind;
                match self.stream.consumer_info(&self.name).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                        return Err(Error::not_found("subscription", &self.name));
                    }
                    Err(e) => return Err(map_err(&self.client, "bind to a consumer", e)),
                }
                self.stream
                    .get_consumer(&self.name)
                    .await
                    .map_err(|e| map_err(&self.client, "bind to a consumer", BoxedError(e)))?
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|e| map_err(&self.client, "pull", e));
        self.consumer = Some(consumer);
        messages
    }
}

#[async_trait]
impl<T: Send + 'static> Subscription<T> for NatsSubscription<T> {
    async fn next(&mut self) -> Result<Delivery<T>> {
        if self.messages.is_none() {
            self.consumer = None;
            self.messages = Some(self.pull().await?);
        }
        let Some(messages) = self.messages.as_mut() else {
            unreachable!("set above");
        };
        let message = match messages.next().await {
            Some(Ok(message)) => message,
            None => {
                self.messages = None;
                return Err(Error::Unavailable {
                    reason: format!("NATS: the pull of {} ended; call next again", self.name),
                });
            }
            Some(Err(e)) => {
                return Err(match e.kind() {
                    pull::MessagesErrorKind::ConsumerDeleted => {
                        self.messages = None;
                        Error::not_found("subscription", &self.name)
                    }
                    // Silence: the server is away, or the consumer was deleted (2.9 does not
                    // tell pull requests so).
                    pull::MessagesErrorKind::MissingHeartbeat => {
                        use async_nats::jetstream::context::ConsumerInfoErrorKind;
                        match self.stream.consumer_info(&self.name).await {
                            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                                self.messages = None;
                                Error::not_found("subscription", &self.name)
                            }
                            _ => Error::Unavailable {
                                reason: format!("NATS: missed heartbeats on {}", self.name),
                            },
                        }
                    }
                    _ => map_err(&self.client, "pull", e),
                });
            }
        };
        let (sequence, attempt) = {
            let info = message.info().map_err(|e| Error::Backend {
                backend: super::BACKEND,
                source: e,
            })?;
            (
                info.stream_sequence,
                u64::try_from(info.delivered).unwrap_or(1),
            )
        };
        let (message, acker) = message.split();
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(KEY_HEADER))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let acker = NatsAcker {
            acker,
            client: self.client.clone(),
        };
        match (self.decode)(&message.payload, &key) {
            Ok(payload) => Ok(Delivery::new(
                payload,
                sequence,
                key,
                attempt,
                Box::new(acker),
            )),
            Err(e) => {
                // Never deliverable: take it out of the stream's way.
                acker.acker.ack_with(AckKind::Term).await.ok();
                Err(e)
            }
        }
    }
}

struct NatsAcker {
    acker: JsAcker,
    client: async_nats::Client,
}

impl fmt::Debug for NatsAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAcker").finish_non_exhaustive()
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(&self) -> Result<()> {
        self.acker
            .ack()
            .await
            .map_err(|e| map_err(&self.client, "ack", BoxedError(e)))
    }

    async fn nak(&self, delay: Duration) -> Result<()> {
        let delay = (!delay.is_zero()).then_some(delay);
        self.acker
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| map_err(&self.client, "nak", BoxedError(e)))
    }
}

/// async-nats' boxed error as a `std::error::Error`.
#[derive(Debug)]
struct BoxedError(async_nats::Error);

impl fmt::Display for BoxedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedError {}
