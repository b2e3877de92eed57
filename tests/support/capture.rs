//! A `tracing` subscriber that keeps every event, with its level, message, fields and the
//! spans it happened in (their names and fields), for tests to look through.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One event as it was emitted.
#[derive(Debug, Clone)]
pub struct Captured {
    pub level: Level,
    pub target: String,
    pub message: String,
    /// `name=value` for each field but the message, values as `Debug` shows them.
    pub fields: Vec<(String, String)>,
    /// The spans it happened in, outermost first: name and `name=value` fields.
    pub spans: Vec<(String, Vec<(String, String)>)>,
}

impl Captured {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn in_span(&self, name: &str) -> Option<&[(String, String)]> {
        self.spans
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, fields)| fields.as_slice())
    }

    /// Everything about it as one text, to look for what must not be there.
    pub fn text(&self) -> String {
        let mut text = format!("{} {} {}", self.level, self.target, self.message);
        for (name, value) in &self.fields {
            let _ = write!(text, " {name}={value}");
        }
        for (span, fields) in &self.spans {
            let _ = write!(text, " in {span}");
            for (name, value) in fields {
                let _ = write!(text, " {name}={value}");
            }
        }
        text
    }
}

/// What a capture kept; shared by every thread given the capture.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    /// A subscriber keeping events here (every level).
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        tracing_subscriber::registry().with(Keeper {
            events: self.events.clone(),
        })
    }

    /// Runs `act` with this capture as the thread's subscriber.
    pub fn during<R>(&self, act: impl FnOnce() -> R) -> R {
        tracing::subscriber::with_default(self.subscriber(), act)
    }

    pub fn events(&self) -> Vec<Captured> {
        self.events.lock().unwrap().clone()
    }

    /// The events whose message starts with `start`.
    pub fn find(&self, start: &str) -> Vec<Captured> {
        self.events()
            .into_iter()
            .filter(|e| e.message.starts_with(start))
            .collect()
    }

    /// The one event whose message starts with `start`, or a panic listing what there was.
    pub fn one(&self, start: &str) -> Captured {
        let found = self.find(start);
        assert!(
            !found.is_empty(),
            "no event {start:?} among:\n{}",
            self.listing()
        );
        found[0].clone()
    }

    pub fn listing(&self) -> String {
        self.events()
            .iter()
            .map(Captured::text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}

struct Keeper {
    events: Arc<Mutex<Vec<Captured>>>,
}

/// A span's fields, kept in its extensions.
struct SpanFields(Vec<(String, String)>);

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .push((field.name().to_owned(), value.to_owned()));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Keeper {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = context
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| {
                        let fields = span
                            .extensions()
                            .get::<SpanFields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default();
                        (span.name().to_owned(), fields)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: fields.message,
            fields: fields.fields,
            spans,
        });
    }
}
