//! Incremental UTF-8 validation that fails at the first invalid byte.

/// Validates UTF-8 delivered in arbitrary pieces.
///
/// `feed` reports an error as soon as the bytes seen so far cannot be the
/// start of valid UTF-8, even when a code point is split across pieces (so a
/// text message fails fast, mid-frame, as RFC 6455 §8.1 allows).
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The bytes fed to a [`Utf8Validator`] are not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = sequence_width(self.pending[0]);
            let take = width.saturating_sub(have).min(data.len());
            let (head, rest) = data.split_at(take);
            // `have + take <= width <= 4`: the fallbacks below never run.
            let now = have.saturating_add(take);
            let Some(dst) = self.pending.get_mut(have..now) else {
                return Err(InvalidUtf8);
            };
            dst.copy_from_slice(head);
            data = rest;
            match std::str::from_utf8(self.pending.get(..now).unwrap_or_default()) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; `data` is empty here because we
                    // took fewer bytes than the sequence needs.
                    self.pending_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    // An incomplete sequence at the end: at most 3 bytes.
                    let rest = data.get(e.valid_up_to()..).unwrap_or_default();
                    let Some(dst) = self.pending.get_mut(..rest.len()) else {
                        return Err(InvalidUtf8);
                    };
                    dst.copy_from_slice(rest);
                    self.pending_len = rest.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Checks that the text ends on a code point boundary.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.pending_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Whether a code point is split at the current position.
    pub fn is_mid_sequence(&self) -> bool {
        self.pending_len != 0
    }
}

/// The width of a sequence given a lead byte that `from_utf8` accepted as the
/// start of an incomplete sequence (so it is a valid 2-, 3- or 4-byte lead).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(bytes: &[u8]) -> Vec<bool> {
        (0..=bytes.len())
            .map(|i| {
                let mut v = Utf8Validator::new();
                v.feed(&bytes[..i]).is_ok() && v.feed(&bytes[i..]).is_ok() && v.finish().is_ok()
            })
            .collect()
    }

    #[test]
    fn valid_text_split_anywhere_is_valid() {
        let s = "κόσμε a€𝄞 end";
        assert!(split_everywhere(s.as_bytes()).iter().all(|ok| *ok));
    }

    #[test]
    fn invalid_detected_wherever_split() {
        for bad in [
            &b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"[..],
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"ab\xff",
        ] {
            assert!(split_everywhere(bad).iter().all(|ok| !ok), "{bad:?}");
        }
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        // 0xF4 0x90 can never start a valid sequence (> U+10FFFF): fail
        // before the rest of the code point arrives.
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok\xf4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xe2\x82").is_ok());
        assert!(v.is_mid_sequence());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn byte_by_byte() {
        let s = "héllo wörld 𝄞𝄞";
        let mut v = Utf8Validator::new();
        for b in s.as_bytes() {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }
}
