//! The byte budget of list answers (`--max-response`): a JSON array written item by item into
//! one buffer, each item serialized once, that stops before the item that would take it past
//! the budget. The route then answers what fits, with its cursor (or `"truncated": true` where
//! it has none).
//!
//! A page always makes progress: its first item goes in even when it alone is over the budget,
//! in the shape of a small marker, `{"seq": N, "omitted_bytes": B}` (plus what the route adds to
//! say which record it is), in place of the record. So paging never sticks on one record, the
//! answer stays within the budget, and the client learns which record it did not get and how
//! large it is (an operator can raise `--max-response` to serve it).

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use super::ApiError;
use crate::store::Page;

/// One item of a list answer, with what its marker would say of it.
pub struct Entry<I> {
    pub seq: u64,
    /// The record's `type`, where the list has several.
    pub kind: Option<&'static str>,
    pub sig_hash: Option<String>,
    pub item: I,
}

/// A store page as a list answer within `max_bytes`, and the cursor to the next page: the seq
/// of the last item sent, when the store had more or the budget cut the list.
pub fn cursored<T, I: Serialize>(
    page: Page<T>,
    max_bytes: usize,
    entry: impl Fn(T) -> Entry<I>,
) -> Result<(Box<RawValue>, Option<u64>), ApiError> {
    let (list, cursor) = cursored_list(page, max_bytes, entry)?;
    Ok((list.finish()?, cursor))
}

/// [`cursored`], the list left to be written into its answer ([`ObjectBody::list`]).
pub fn cursored_list<T, I: Serialize>(
    page: Page<T>,
    max_bytes: usize,
    entry: impl Fn(T) -> Entry<I>,
) -> Result<(JsonList, Option<u64>), ApiError> {
    let (list, last_seq) = fill(page.items, max_bytes, entry)?;
    let cursor = if page.more || list.was_cut() {
        last_seq
    } else {
        None
    };
    Ok((list, cursor))
}

/// `answer` as the response that sends it, serialized here into one buffer: for routes that
/// make their answer in their read (see [`ObjectBody`]).
pub fn json_response(answer: &impl Serialize) -> Result<Response, ApiError> {
    let mut body = Vec::new();
    serialize_into(&mut body, answer)?;
    Ok(json_bytes(body))
}

/// The response that sends `body`, a JSON text.
fn json_bytes(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response()
}

/// An answer that is a JSON object holding a list, written field by field into one buffer of
/// about its size, the list's bytes copied in once (where a `Json` of a struct holding the list
/// as a `RawValue` parses the list again to check it, and copies it twice). Routes whose lists
/// can be large make it in their read, on its thread and in its slots, so that the async
/// workers only send it: a megabytes-long list serialized there kept every other request
/// waiting, writes included.
pub struct ObjectBody(Vec<u8>);

impl ObjectBody {
    /// An object about to hold `list` (for its size).
    pub fn for_list(list: &JsonList) -> ObjectBody {
        let mut body = Vec::with_capacity(list.buf.len().saturating_add(256));
        body.push(b'{');
        ObjectBody(body)
    }

    /// Adds the field `name` (a plain name, written as it is) with `value`.
    pub fn field(mut self, name: &str, value: &impl Serialize) -> Result<ObjectBody, ApiError> {
        self.name(name);
        serialize_into(&mut self.0, value)?;
        Ok(self)
    }

    /// Adds the field `name` with `list`.
    pub fn list(mut self, name: &str, list: JsonList) -> ObjectBody {
        self.name(name);
        self.0.extend_from_slice(&list.buf);
        self.0.push(b']');
        self
    }

    fn name(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// The response that sends it.
    pub fn finish(mut self) -> Response {
        self.0.push(b'}');
        json_bytes(self.0)
    }
}

/// Items as a list answer within `max_bytes` for a route without a cursor: the list, how many
/// items it holds, and whether the budget cut it.
pub fn truncating<T, I: Serialize>(
    items: impl IntoIterator<Item = T>,
    max_bytes: usize,
    entry: impl Fn(T) -> Entry<I>,
) -> Result<(Box<RawValue>, usize, bool), ApiError> {
    let (list, _) = fill(items, max_bytes, entry)?;
    let (count, cut) = (list.len(), list.was_cut());
    Ok((list.finish()?, count, cut))
}

/// Pushes items until the budget cuts the list; returns it with the seq of its last item.
fn fill<T, I: Serialize>(
    items: impl IntoIterator<Item = T>,
    max_bytes: usize,
    entry: impl Fn(T) -> Entry<I>,
) -> Result<(JsonList, Option<u64>), ApiError> {
    let mut list = JsonList::new(max_bytes);
    let mut last_seq = None;
    for item in items {
        let Entry {
            seq,
            kind,
            sig_hash,
            item,
        } = entry(item);
        let omitted = |omitted_bytes| Omitted {
            kind,
            seq,
            sig_hash: sig_hash.as_deref(),
            omitted_bytes,
        };
        if !list.push(&item, omitted)? {
            break;
        }
        last_seq = Some(seq);
    }
    Ok((list, last_seq))
}

/// The marker sent in place of a first item that alone is over the budget.
#[derive(Debug, Serialize)]
pub struct Omitted<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig_hash: Option<&'a str>,
    /// The record's size as it would have been sent.
    pub omitted_bytes: usize,
}

/// A JSON array being written within a byte budget (the brackets and commas count).
#[derive(Debug)]
pub struct JsonList {
    buf: Vec<u8>,
    max_bytes: usize,
    n_items: usize,
    cut: bool,
}

impl JsonList {
    pub fn new(max_bytes: usize) -> JsonList {
        JsonList {
            buf: vec![b'['],
            max_bytes,
            n_items: 0,
            cut: false,
        }
    }

    /// Appends `item`, or, when that would pass the budget, leaves the list as it was and says
    /// false (the list is then cut: nothing more goes in). A first item that alone is over the
    /// budget is replaced by `omitted(its size)` and the list goes on.
    pub fn push<M: Serialize>(
        &mut self,
        item: &impl Serialize,
        omitted: impl FnOnce(usize) -> M,
    ) -> Result<bool, ApiError> {
        if self.cut {
            return Ok(false);
        }
        let mark = self.buf.len();
        if self.n_items > 0 {
            self.buf.push(b',');
        }
        let start = self.buf.len();
        serialize_into(&mut self.buf, item)?;
        // The closing bracket must fit too.
        if self.buf.len() + 1 > self.max_bytes {
            let item_bytes = self.buf.len() - start;
            self.buf.truncate(mark);
            if self.n_items > 0 {
                self.cut = true;
                return Ok(false);
            }
            serialize_into(&mut self.buf, &omitted(item_bytes))?;
        }
        self.n_items += 1;
        Ok(true)
    }

    /// Whether an item was left out for the budget.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    pub fn len(&self) -> usize {
        self.n_items
    }

    /// The array, ready to be placed in the answer as it is.
    pub fn finish(mut self) -> Result<Box<RawValue>, ApiError> {
        self.buf.push(b']');
        let text = String::from_utf8(self.buf)
            .map_err(|e| ApiError::Internal(format!("an answer was not UTF-8: {e}")))?;
        RawValue::from_string(text)
            .map_err(|e| ApiError::Internal(format!("an answer was not JSON: {e}")))
    }
}

fn serialize_into(buf: &mut Vec<u8>, item: &impl Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(buf, item)
        .map_err(|e| ApiError::Internal(format!("cannot serialize an answer: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn omitted(seq: u64) -> impl FnOnce(usize) -> Omitted<'static> {
        move |omitted_bytes| Omitted {
            kind: None,
            seq,
            sig_hash: None,
            omitted_bytes,
        }
    }

    fn parse(list: JsonList) -> Value {
        serde_json::from_str(list.finish().unwrap().get()).unwrap()
    }

    /// An answer written field by field is the JSON of the same object.
    #[test]
    fn an_object_body_is_its_fields_json() {
        let list = |items: &[Value]| {
            let mut list = JsonList::new(1 << 20);
            for (seq, item) in (1..).zip(items) {
                assert!(list.push(item, omitted(seq)).unwrap());
            }
            list
        };
        let items = [json!({"a": 1}), json!("two \" \u{1f600}")];
        #[rustfmt::skip]
        let cases: Vec<(ObjectBody, &str)> = vec![
            (ObjectBody::for_list(&list(&items)).field("sig_hash", &"pr1-ab\"c").unwrap()
                .list("records", list(&items)).field("next_after_seq", &7u64).unwrap(),
                "{\"sig_hash\":\"pr1-ab\\\"c\",\"records\":[{\"a\":1},\"two \\\" \u{1f600}\"],\"next_after_seq\":7}"),
            (ObjectBody::for_list(&list(&[])).list("events", list(&[])),
                r#"{"events":[]}"#),
        ];
        for (body, want) in cases {
            let response = body.finish();
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let text = String::from_utf8(futures_body(response)).unwrap();
            assert_eq!(text, want);
            serde_json::from_str::<Value>(&text).unwrap();
        }
    }

    fn futures_body(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        })
    }

    #[test]
    fn a_list_stops_before_the_item_that_passes_the_budget() {
        // `[{"n":1},{"n":2}]` is 17 bytes.
        let mut list = JsonList::new(17);
        assert!(list.push(&json!({"n": 1}), omitted(1)).unwrap());
        assert!(list.push(&json!({"n": 2}), omitted(2)).unwrap());
        assert!(!list.push(&json!({"n": 3}), omitted(3)).unwrap());
        assert!(
            !list.push(&json!({}), omitted(4)).unwrap(),
            "a cut list stays cut"
        );
        assert!(list.was_cut());
        assert_eq!(list.len(), 2);
        assert_eq!(parse(list), json!([{"n": 1}, {"n": 2}]));

        let mut roomy = JsonList::new(1 << 20);
        for n in 0..100 {
            assert!(roomy.push(&json!({ "n": n }), omitted(n)).unwrap());
        }
        assert!(!roomy.was_cut());
        assert_eq!(parse(roomy).as_array().unwrap().len(), 100);
    }

    #[test]
    fn a_first_item_alone_over_the_budget_becomes_a_marker() {
        let mut list = JsonList::new(64);
        let big = json!({"text": "x".repeat(100)});
        let big_len = serde_json::to_vec(&big).unwrap().len();
        assert!(list.push(&big, omitted(7)).unwrap());
        assert!(list.push(&json!({"n": 8}), omitted(8)).unwrap());
        assert!(!list.push(&big, omitted(9)).unwrap());
        assert_eq!(
            parse(list),
            json!([{"seq": 7, "omitted_bytes": big_len}, {"n": 8}])
        );
    }
}
