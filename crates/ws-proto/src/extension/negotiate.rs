//! Negotiation of any set of extensions, and the chain a connection runs once open.

use std::sync::Arc;

use bytes::BytesMut;

use super::{parse_extensions, Extension, ExtensionFactory, Params, Rsv};

/// The extensions a connection agreed on, in the agreed order (the order outgoing messages go
/// through them), with the `Sec-WebSocket-Extensions` value that says so. Nothing is allocated
/// when no extension was agreed (the usual case: a connection without extensions pays one
/// pointer for it).
#[derive(Debug, Default)]
pub(crate) struct Chain(Option<Box<Agreed>>);

/// What a non-empty [`Chain`] holds.
#[derive(Debug, Default)]
struct Agreed {
    exts: Vec<Box<dyn Extension>>,
    owned: Rsv,
    header: Option<String>,
    /// Output of the inner decoders when a message went through more than one extension,
    /// reused from message to message.
    scratch: [BytesMut; 2],
}

impl Chain {
    /// The agreed state, made on first use.
    fn agreed(&mut self) -> &mut Agreed {
        self.0.get_or_insert_with(Box::default)
    }

    /// Adds the next extension; refuses one without bits or with a bit already owned.
    fn push(&mut self, ext: Box<dyn Extension>) -> Result<(), String> {
        let bits = ext.rsv();
        if bits.is_empty() {
            return Err(format!("extension {:?} uses no RSV bit", ext.name()));
        }
        if !self.owned().intersection(bits).is_empty() {
            return Err(format!(
                "extension {:?} wants an RSV bit another extension owns",
                ext.name()
            ));
        }
        let a = self.agreed();
        a.owned = a.owned.union(bits);
        a.exts.push(ext);
        Ok(())
    }

    /// Sets the agreed `Sec-WebSocket-Extensions` value.
    fn set_header(&mut self, header: String) {
        self.agreed().header = Some(header);
    }

    /// Every RSV bit a negotiated extension owns.
    pub(crate) fn owned(&self) -> Rsv {
        self.0.as_ref().map_or(Rsv::NONE, |a| a.owned)
    }

    /// The agreed `Sec-WebSocket-Extensions` value.
    pub(crate) fn header(&self) -> Option<&str> {
        self.0.as_ref()?.header.as_deref()
    }

    /// The negotiated extensions in the agreed order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &dyn Extension> {
        self.0.iter().flat_map(|a| a.exts.iter()).map(|e| &**e)
    }

    /// The negotiated extensions in the agreed order, mutably.
    pub(crate) fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Box<dyn Extension>> + '_ {
        self.0.iter_mut().flat_map(|a| a.exts.iter_mut())
    }

    /// Whether no extension was agreed.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|a| a.exts.is_empty())
    }

    /// The one agreed extension, when exactly one was.
    pub(crate) fn single_mut(&mut self) -> Option<&mut Box<dyn Extension>> {
        match self.0.as_mut()?.exts.as_mut_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The extensions and the two scratch buffers, borrowed separately (only
    /// asked for a message an extension transformed, so never of an empty
    /// chain).
    pub(crate) fn parts(&mut self) -> (&mut Vec<Box<dyn Extension>>, [&mut BytesMut; 2]) {
        let a = self.agreed();
        let [x, y] = &mut a.scratch;
        (&mut a.exts, [x, y])
    }

    /// Capacity held by the scratch buffers.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |a| a.scratch.iter().map(BytesMut::capacity).sum())
    }

    /// Frees the scratch buffers.
    pub(crate) fn release_buffers(&mut self) {
        if let Some(a) = self.0.as_mut() {
            a.scratch = Default::default();
        }
    }
}

/// Renders one list element: `name; p; q=v`. `None` if a name or value is not a token
/// (nothing a factory returns may break the header).
fn render(name: &str, params: &Params) -> Option<String> {
    let token = |s: &str| !s.is_empty() && s.bytes().all(super::header::is_tchar);
    if !token(name) {
        return None;
    }
    let mut out = String::from(name);
    for (n, v) in params {
        if !token(n) || v.as_deref().is_some_and(|v| !token(v)) {
            return None;
        }
        out.push_str("; ");
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
    Some(out)
}

/// Client role: the `Sec-WebSocket-Extensions` value offering every factory's offers, in
/// order; `Ok(None)` when nothing is offered. An offer that is not made of tokens is an error
/// naming the extension.
pub(crate) fn client_offer_header(
    factories: &[Arc<dyn ExtensionFactory>],
) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for f in factories {
        for offer in f.client_offers() {
            let part = render(f.name(), &offer)
                .ok_or_else(|| format!("extension {:?}: offer is not made of tokens", f.name()))?;
            parts.push(part);
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(", ")))
}

/// Client role: checks the server's answer (every `Sec-WebSocket-Extensions` value of the
/// response) against what `factories` offered, and builds the chain. Any problem fails the
/// handshake with the returned reason.
pub(crate) fn client_accept(
    factories: &[Arc<dyn ExtensionFactory>],
    values: &[&str],
) -> Result<Chain, String> {
    let list = parse_extensions(values).map_err(|e| e.to_string())?;
    let mut chain = Chain::default();
    let mut used = vec![false; factories.len()];
    for element in &list {
        let offered = factories.iter().position(|f| {
            f.name().eq_ignore_ascii_case(&element.name) && !f.client_offers().is_empty()
        });
        let (Some(i), Some(f)) = (offered, offered.and_then(|i| factories.get(i))) else {
            return Err(format!(
                "server accepted extension {:?} that we did not offer",
                element.name
            ));
        };
        if used.get_mut(i).is_some_and(|u| std::mem::replace(u, true)) {
            return Err(format!("server accepted {} more than once", f.name()));
        }
        let ext = f.client_accept(&element.params)?;
        chain.push(ext)?;
    }
    if !list.is_empty() {
        chain.set_header(values.join(", "));
    }
    Ok(chain)
}

/// Server role: walks the client's offers in order and accepts, for each extension, the first
/// offer its factory accepts (and whose bits are still free). A malformed header declines
/// everything. Returns the chain, whose header is the answer to send.
pub(crate) fn server_negotiate(factories: &[Arc<dyn ExtensionFactory>], values: &[&str]) -> Chain {
    let mut chain = Chain::default();
    let Ok(list) = parse_extensions(values) else {
        return chain;
    };
    let mut accepted = vec![false; factories.len()];
    let mut parts = Vec::new();
    for element in &list {
        let Some(i) = factories
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(&element.name))
        else {
            continue;
        };
        let (Some(f), Some(done)) = (factories.get(i), accepted.get_mut(i)) else {
            continue;
        };
        if *done {
            continue;
        }
        let Some((answer, ext)) = f.server_accept(&element.params) else {
            continue;
        };
        let Some(part) = render(f.name(), &answer) else {
            continue;
        };
        if chain.push(ext).is_ok() {
            *done = true;
            parts.push(part);
        }
    }
    if !parts.is_empty() {
        chain.set_header(parts.join(", "));
    }
    chain
}
