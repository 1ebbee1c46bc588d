//! The environ values of the header fields (`HTTP_*`, CONTENT_TYPE), prepared together on the
//! first lookup that needs one.

use std::cell::{Cell, OnceCell};
use std::fmt;

use super::super::head::{HeaderEntry, RequestHead, Span};
use super::super::syntax::{contains_ignore_case, latin1};

/// What a header contributes to the environ's `HTTP_*` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvValue {
    /// Nothing: the name has an `_` (gevent #819: dropped, it could spoof a `-` header) or it is
    /// `Content-Type` / `Content-Length` (CONTENT_TYPE / CONTENT_LENGTH instead).
    Skip,
    /// A repeat of an earlier header; its value was joined into that one.
    Merged,
    /// The value is this span of the head (ASCII).
    Span(Span),
    /// The value is `Prepared::owned[i]` (joined, or latin-1 decoded).
    Owned(u16),
}

/// The environ value of one header field line.
#[derive(Debug, Clone, Copy)]
struct Slot {
    value: EnvValue,
    /// Whether the header is an `HTTP_*` entry.
    http: bool,
}

/// The environ values of a request's header fields, one [`Slot`] per field line, computed for
/// all of them on the first lookup that needs one.
#[derive(Default)]
pub(crate) struct EnvValues {
    prepared: OnceCell<Prepared>,
    /// The slots of an earlier request, kept for their allocation.
    spare: Cell<Vec<Slot>>,
}

#[derive(Debug)]
struct Prepared {
    slots: Vec<Slot>,
    /// Values that are not spans of the head (joined repeats, latin-1 decoded values).
    owned: Vec<String>,
}

impl fmt::Debug for EnvValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvValues")
            .field("prepared", &self.prepared.get())
            .finish_non_exhaustive()
    }
}

impl EnvValues {
    /// Forgets the values of the previous request.
    pub(crate) fn reset(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            self.spare.set(prepared.slots);
        }
    }

    /// Gives every allocation back (an idle keep-alive connection).
    pub(crate) fn release(&mut self) {
        self.prepared.take();
        self.spare.take();
    }

    fn prepared(&self, head: &RequestHead) -> &Prepared {
        self.prepared
            .get_or_init(|| prepare(head, self.spare.take()))
    }

    /// The environ value of header field line `index` (`None` for skipped or merged lines).
    pub(crate) fn value<'a>(&'a self, head: &'a RequestHead, index: usize) -> Option<&'a str> {
        let prepared = self.prepared(head);
        prepared.get(head, *prepared.slots.get(index)?)
    }

    /// The header field lines that are `HTTP_*` environ keys, with their values (repeats merged
    /// into the first line of their name).
    pub(crate) fn http_entries<'a>(
        &'a self,
        head: &'a RequestHead,
    ) -> impl Iterator<Item = (&'a HeaderEntry, &'a str)> {
        let prepared = self.prepared(head);
        head.headers
            .iter()
            .zip(&prepared.slots)
            .filter(|(_, slot)| slot.http)
            .filter_map(move |(entry, &slot)| Some((entry, prepared.get(head, slot)?)))
    }
}

impl Prepared {
    #[inline]
    fn get<'a>(&'a self, head: &'a RequestHead, slot: Slot) -> Option<&'a str> {
        match slot.value {
            EnvValue::Skip | EnvValue::Merged => None,
            EnvValue::Span(span) => Some(span.str(&head.buf)),
            EnvValue::Owned(i) => self.owned.get(i as usize).map(String::as_str),
        }
    }
}

/// Computes the environ values of all headers: the `HTTP_*` entries with gevent's joining rules
/// (`,`, or `; ` for names containing COOKIE), names containing `_` dropped (gevent #819, they
/// could spoof a `-` header), latin-1 decoding of non-ASCII values, and the absolute-form
/// authority in place of Host (RFC 9112 3.2.2); and the value of the first Content-Type.
fn prepare(head: &RequestHead, mut slots: Vec<Slot>) -> Prepared {
    slots.clear();
    let buf = &head.buf;
    let mut owned: Vec<String> = Vec::new();
    for (index, entry) in head.headers.iter().enumerate() {
        let name = entry.name.get(buf);
        let value = entry.value.get(buf);
        let special = name.eq_ignore_ascii_case(b"content-type")
            || name.eq_ignore_ascii_case(b"content-length");
        if name.contains(&b'_') || special {
            let value = if head.content_type == Some(index as u16) {
                own_value(entry.value, value, &mut owned)
            } else {
                EnvValue::Skip
            };
            slots.push(Slot { value, http: false });
            continue;
        }
        let earlier = slots.iter().zip(&head.headers).position(|(slot, other)| {
            slot.http
                && matches!(slot.value, EnvValue::Span(_) | EnvValue::Owned(_))
                && other.name.get(buf).eq_ignore_ascii_case(name)
        });
        let Some(first) = earlier else {
            let mut env = own_value(entry.value, value, &mut owned);
            if let Some(authority) = head.authority {
                if name.eq_ignore_ascii_case(b"host") {
                    env = EnvValue::Span(authority);
                }
            }
            slots.push(Slot {
                value: env,
                http: true,
            });
            continue;
        };
        slots.push(Slot {
            value: EnvValue::Merged,
            http: true,
        });
        let text = latin1(value);
        let sep = if contains_ignore_case(name, b"cookie") {
            "; "
        } else {
            ","
        };
        match slots[first].value {
            EnvValue::Owned(i) => {
                let joined = &mut owned[i as usize];
                joined.push_str(sep);
                joined.push_str(&text);
            }
            EnvValue::Span(span) => {
                let earlier = span.str(buf);
                let mut joined = String::with_capacity(earlier.len() + sep.len() + text.len());
                joined.push_str(earlier);
                joined.push_str(sep);
                joined.push_str(&text);
                slots[first].value = EnvValue::Owned(owned.len() as u16);
                owned.push(joined);
            }
            EnvValue::Skip | EnvValue::Merged => {}
        }
    }
    Prepared { slots, owned }
}

/// A header's own environ value: its span when ASCII, else an owned latin-1 decoding.
fn own_value(span: Span, value: &[u8], owned: &mut Vec<String>) -> EnvValue {
    if value.is_ascii() {
        return EnvValue::Span(span);
    }
    owned.push(value.iter().map(|&b| char::from(b)).collect());
    EnvValue::Owned((owned.len() - 1) as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::super::head::{parse, Limits};
    use super::*;

    fn ok(raw: &[u8]) -> RequestHead {
        let mut head = RequestHead::default();
        let limits = Limits::new(8192, 64 * 1024, None);
        assert_eq!(parse(raw, &mut head, &limits), Ok(Some(raw.len())));
        head
    }

    /// The environ value the header `name` becomes (test helper, also for head's tests).
    pub(crate) fn env(head: &RequestHead, name: &str) -> Option<String> {
        EnvValues::default()
            .http_entries(head)
            .find(|(e, _)| head.header_name(e).eq_ignore_ascii_case(name))
            .map(|(_, value)| value.to_owned())
    }

    #[test]
    fn environ_joining_rules() {
        let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nCookie: a=1\r\nx-a: 2\r\ncookie: b=2\r\nCookie2: c\r\nCOOKIE2: d\r\nx-auth_user: bob\r\nContent-Type: text/x\r\nContent-Length: 0\r\nX-L: caf\xe9\r\n\r\n");
        assert_eq!(env(&head, "x-a").as_deref(), Some("1,2"));
        assert_eq!(env(&head, "cookie").as_deref(), Some("a=1; b=2"));
        assert_eq!(env(&head, "cookie2").as_deref(), Some("c; d"));
        assert_eq!(env(&head, "x-auth_user"), None);
        assert_eq!(env(&head, "content-type"), None);
        assert_eq!(env(&head, "x-l").as_deref(), Some("caf\u{e9}"));
        assert_eq!(head.content_type, Some(8));
        let values = EnvValues::default();
        let merged = values
            .prepared(&head)
            .slots
            .iter()
            .filter(|slot| slot.value == EnvValue::Merged)
            .count();
        assert_eq!(merged, 3);
    }
}
