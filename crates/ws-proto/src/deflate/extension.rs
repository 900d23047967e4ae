//! permessage-deflate as the first implementation of the extension interface.

use std::any::Any;

use super::*;
use crate::extension::{Extension, ExtensionFactory, Params, Rsv};
use crate::{MessageKind, ProtocolError};

/// permessage-deflate's negotiating half: offers, answers and server policy from a
/// [`DeflateConfig`]. [`Config::deflate`](crate::Config::deflate) installs one; give one to
/// [`Accept::extensions`](crate::Accept::extensions) to choose compression per request.
#[derive(Clone, Debug, Default)]
pub struct DeflateFactory {
    cfg: DeflateConfig,
}

impl DeflateFactory {
    /// A factory with these settings.
    pub fn new(cfg: DeflateConfig) -> Self {
        DeflateFactory { cfg }
    }

    /// The settings.
    pub fn config(&self) -> &DeflateConfig {
        &self.cfg
    }
}

impl ExtensionFactory for DeflateFactory {
    fn name(&self) -> &str {
        EXTENSION_NAME
    }

    fn client_offers(&self) -> Vec<Params> {
        self.cfg.offers.iter().map(offer_params).collect()
    }

    fn client_accept(&self, answer: &Params) -> Result<Box<dyn Extension>, String> {
        let params = agree(&self.cfg, answer).map_err(|e| e.to_string())?;
        Ok(Box::new(DeflateExtension::new(
            params,
            Role::Client,
            &self.cfg,
        )))
    }

    fn server_accept(&self, offer: &Params) -> Option<(Params, Box<dyn Extension>)> {
        let (params, answer) = accept(&self.cfg, offer)?;
        let ext = DeflateExtension::new(params, Role::Server, &self.cfg);
        Some((answer, Box::new(ext)))
    }
}

/// permessage-deflate on one connection: the agreed parameters, a compressor for our
/// direction and a bounded decompressor for the peer's. Owns RSV1.
#[derive(Debug)]
pub struct DeflateExtension {
    params: DeflateParams,
    compressor: Compressor,
    decompressor: Decompressor,
    threshold: usize,
}

impl DeflateExtension {
    /// The state for `role`'s side of `params`, compressing at `cfg.level` the messages of at
    /// least `cfg.threshold` bytes.
    pub fn new(params: DeflateParams, role: Role, cfg: &DeflateConfig) -> Self {
        DeflateExtension {
            compressor: Compressor::new(&params, role, cfg.level),
            decompressor: Decompressor::new(&params, role),
            params,
            threshold: cfg.threshold,
        }
    }

    /// The agreed parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }
}

impl Extension for DeflateExtension {
    fn name(&self) -> &str {
        EXTENSION_NAME
    }

    fn rsv(&self) -> Rsv {
        Rsv::RSV1
    }

    fn encode(&mut self, _kind: MessageKind, payload: &[u8], out: &mut BytesMut) -> bool {
        if payload.len() < self.threshold {
            return false;
        }
        self.compressor.compress(payload, out);
        true
    }

    fn encode_room(&self, len: usize) -> usize {
        deflate_room(len)
    }

    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        match self.decompressor.decompress(payload, fin, out, limit) {
            Ok(_) => Ok(()),
            Err(InflateError::TooLarge) => Err(ProtocolError::MessageTooLarge { limit }),
            Err(_) => Err(ProtocolError::BadCompressedData),
        }
    }

    fn decode_room(&self, len: usize) -> usize {
        // Room for a frame like the previous one to inflate in one step (plus the flush
        // tail's step): several messages of one read then share one allocation.
        self.decompressor.first_room(len).saturating_add(256)
    }

    fn shared_key(&self) -> Option<u64> {
        // Without context takeover every message starts from a fresh compressor: its bytes
        // depend only on the window, the level and whether the threshold is reached.
        self.compressor.no_context_takeover.then(|| {
            let threshold = u32::try_from(self.threshold).unwrap_or(u32::MAX);
            u64::from(self.compressor.window_bits)
                | u64::from(self.compressor.level) << 8
                | u64::from(threshold) << 32
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
