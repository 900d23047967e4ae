//! Messages prepared once for many connections (broadcasts).

use std::any::TypeId;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::{Error, MessageKind};

/// At most this many encodings (distinct extension keys) are kept per message; connections
/// past them encode for themselves.
const MAX_ENCODINGS: usize = 8;

/// A message to send to many connections with
/// [`Connection::send_prepared`](crate::Connection::send_prepared): its payload is shared (never
/// copied per connection), and where the negotiated extension can share its output (see
/// [`Extension::shared_key`](crate::extension::Extension::shared_key); permessage-deflate
/// without context takeover on our side) it is encoded — compressed — once for every
/// connection that agreed the same parameters, not once per connection.
///
/// Connections whose extensions cannot share (context takeover, or more than one extension)
/// encode the message themselves, as [`Connection::send`](crate::Connection::send) does: the
/// bytes on the wire are the same either way.
///
/// Cloning is cheap (a reference count); clones share the encodings, from any thread.
///
/// ```
/// use ws_proto::PreparedMessage;
/// # use ws_proto::{Config, Connection};
/// # fn room(members: &mut [Connection]) {
/// let msg = PreparedMessage::text("hello, everyone");
/// for conn in members.iter_mut() {
///     let _ = conn.send_prepared(&msg);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    kind: MessageKind,
    data: Bytes,
    /// The encodings made so far: (extension type, its key) → the encoded payload, or `None`
    /// when the extension sends this message as it is.
    encodings: Mutex<Vec<(TypeId, u64, Option<Bytes>)>>,
}

impl PreparedMessage {
    /// A message of `kind`; text must be valid UTF-8 ([`Error::InvalidUtf8`] otherwise).
    pub fn new(kind: MessageKind, data: impl Into<Bytes>) -> Result<PreparedMessage, Error> {
        let data = data.into();
        if kind == MessageKind::Text && std::str::from_utf8(&data).is_err() {
            return Err(Error::InvalidUtf8);
        }
        Ok(PreparedMessage::unchecked(kind, data))
    }

    /// A text message.
    pub fn text(text: &str) -> PreparedMessage {
        PreparedMessage::unchecked(MessageKind::Text, Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> PreparedMessage {
        PreparedMessage::unchecked(MessageKind::Binary, data.into())
    }

    fn unchecked(kind: MessageKind, data: Bytes) -> PreparedMessage {
        PreparedMessage {
            inner: Arc::new(Inner {
                kind,
                data,
                encodings: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.inner.kind
    }

    /// The payload as given.
    pub fn data(&self) -> &Bytes {
        &self.inner.data
    }

    /// How many shared encodings were made (one per distinct extension key that a receiving
    /// connection had; connections without extensions need none).
    pub fn encodings(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(TypeId, u64, Option<Bytes>)>> {
        // The lock is never held across anything that can panic but `encode`, whose
        // partial work is not stored: a poisoned list is still consistent.
        self.inner
            .encodings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared encoding for `(ty, key)`, made with `encode` on first use. `Err(())` when
    /// the list is full: the caller encodes for itself.
    pub(crate) fn encoded(
        &self,
        ty: TypeId,
        key: u64,
        encode: impl FnOnce(&[u8]) -> Option<Bytes>,
    ) -> Result<Option<Bytes>, ()> {
        let mut list = self.lock();
        if let Some((_, _, e)) = list.iter().find(|(t, k, _)| *t == ty && *k == key) {
            return Ok(e.clone());
        }
        if list.len() >= MAX_ENCODINGS {
            return Err(());
        }
        let e = encode(&self.inner.data);
        list.push((ty, key, e.clone()));
        Ok(e)
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("kind", &self.inner.kind)
            .field("len", &self.inner.data.len())
            .field("encodings", &self.encodings())
            .finish()
    }
}
