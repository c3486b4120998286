//! Record headers: the ones every record we produce carries, and reading one.

use contracts::topics::headers as h;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};

/// Headers every record we produce carries.
pub fn record_headers(
    event_type: &str,
    schema_version: u32,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> OwnedHeaders {
    let mut hs = OwnedHeaders::new()
        .insert(Header {
            key: h::EVENT_TYPE,
            value: Some(event_type),
        })
        .insert(Header {
            key: h::SCHEMA_VERSION,
            value: Some(&schema_version.to_string()),
        });
    if let Some(tp) = traceparent {
        hs = hs.insert(Header {
            key: h::TRACEPARENT,
            value: Some(tp),
        });
    }
    if let Some(ts) = tracestate {
        hs = hs.insert(Header {
            key: h::TRACESTATE,
            value: Some(ts),
        });
    }
    hs
}

/// A header as UTF-8, if present.
pub fn header<'a>(msg: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    let hs = msg.headers()?;
    hs.iter()
        .find(|hd| hd.key == name)
        .and_then(|hd| hd.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
