//! A Server-Sent Events parser for the command line: bytes in, events out. It keeps partial
//! lines between chunks, since the network splits the stream wherever it likes.

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
}

/// Turns chunks of a `text/event-stream` body into events.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(e) = self.line_done(&String::from_utf8_lossy(&line)) {
                    out.push(e);
                }
            } else {
                self.line.push(b);
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            // A blank line dispatches; without data there is nothing to dispatch (keep-alives).
            let event = self.event.take();
            let id = self.id.take();
            let data = self.data.take()?;
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
                id,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_back_together() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: prog").is_empty());
        assert!(p.push(b"ress\r\ndata: {\"a\":").is_empty());
        let events =
            p.push(b"1}\n\n:keep-alive\n\nid: 7\nevent: import.started\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "progress".into(),
                    data: "{\"a\":1}".into(),
                    id: None
                },
                SseEvent {
                    event: "import.started".into(),
                    data: "x\ny".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn an_event_without_a_name_is_a_message() {
        let mut p = SseParser::default();
        let events = p.push(b"data:plain\n\n");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].data, "plain");
    }
}
