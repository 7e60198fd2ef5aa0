//! `GET /events/stream`: server-sent events, one per new event. `after_seq=N` (or the
//! `Last-Event-ID` a client sends on reconnect) replays what was missed first.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};

use crate::codes::{model, Engine};
use crate::store::{EventFilter, EventRow};

pub async fn events(engine: Engine, query: Option<&str>) -> Response {
    let after = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("after_seq="))
        .and_then(|v| v.parse::<i64>().ok());
    // Subscribe before reading the backlog, so nothing falls in between.
    let live = engine.subscribe();
    let backlog: Vec<EventRow> = match after {
        Some(seq) => engine
            .events(&EventFilter {
                after_seq: Some(seq),
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let last = backlog.last().map(|e| e.seq).or(after).unwrap_or(0);
    let sse = Sse::new(make_stream(backlog, live, last))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    sse.into_response()
}

fn to_sse(e: &EventRow) -> Event {
    Event::default()
        .id(e.seq.to_string())
        .event(e.event_type.clone())
        .data(model::event_json(e).to_string())
}

fn make_stream(
    backlog: Vec<EventRow>,
    live: tokio::sync::broadcast::Receiver<EventRow>,
    last: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = stream::iter(backlog.into_iter().map(|e| Ok(to_sse(&e))));
    let rest = stream::unfold((live, last), |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                // Events already sent from the backlog are skipped.
                Ok(e) if e.seq > last => return Some((Ok(to_sse(&e)), (rx, e.seq))),
                Ok(_) => continue,
                // A slow reader missed events: tell it, so it can catch up with after_seq.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    return Some((
                        Ok(Event::default().event("lagged").data(n.to_string())),
                        (rx, last),
                    ));
                }
                Err(_) => return None,
            }
        }
    });
    first.chain(rest)
}
