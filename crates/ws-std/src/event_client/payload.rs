//! What the binary sends and `ping` take: owned bytes without a copy, or
//! borrowed bytes (copied once, into the queue).

use bytes::Bytes;

/// Bytes to send: owned ones ([`Vec<u8>`], [`Bytes`], `Box<[u8]>`) are
/// moved without copying; borrowed ones (`&[u8]`, `&Vec<u8>`, `&[u8; N]`,
/// of any lifetime) are copied once, since the send is queued.
pub trait Payload {
    /// The bytes, owned.
    fn into_bytes(self) -> Bytes;
}

impl Payload for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl Payload for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl Payload for Box<[u8]> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl Payload for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl Payload for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> Payload for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> Payload for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}
