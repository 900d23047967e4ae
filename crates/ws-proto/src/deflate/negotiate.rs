//! permessage-deflate negotiation (RFC 7692 §5, §7.1): offers, answers and the agreed parameters.

use super::*;

/// Client role: the `Sec-WebSocket-Extensions` value to send, every offer joined by `", "`.
///
/// Returns an empty string when the configuration has no offers; send no header then.
pub fn client_offer_header(cfg: &DeflateConfig) -> String {
    let factory: Arc<dyn ExtensionFactory> = Arc::new(DeflateFactory::new(cfg.clone()));
    crate::extension::client_offer_header(&[factory])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The parameters of one client offer, in the order RFC 7692 lists them.
pub(super) fn offer_params(offer: &DeflateOffer) -> Params {
    let mut params = Params::new();
    if offer.server_no_context_takeover {
        params.push((SERVER_NO_CONTEXT_TAKEOVER.into(), None));
    }
    if offer.client_no_context_takeover {
        params.push((CLIENT_NO_CONTEXT_TAKEOVER.into(), None));
    }
    if let Some(bits) = offer.server_max_window_bits {
        params.push((
            SERVER_MAX_WINDOW_BITS.into(),
            Some(clamp_bits(bits).to_string()),
        ));
    }
    match offer.client_max_window_bits {
        ClientWindowBits::Absent => {}
        ClientWindowBits::NoValue => params.push((CLIENT_MAX_WINDOW_BITS.into(), None)),
        ClientWindowBits::Bits(bits) => params.push((
            CLIENT_MAX_WINDOW_BITS.into(),
            Some(clamp_bits(bits).to_string()),
        )),
    }
    params
}

/// Client role: validates the server's answer, given every `Sec-WebSocket-Extensions` value of
/// the 101 response, against the offers in `cfg` (RFC 7692 §5, §7.1).
///
/// Returns `Ok(None)` when the server did not accept permessage-deflate (messages are then sent
/// and received uncompressed), `Ok(Some(params))` for the first offer the answer fits, and an
/// error when the client must fail the connection: a malformed header, an extension we did not
/// offer, permessage-deflate twice, an unknown or duplicate parameter, a bad value, or an answer
/// that fits none of our offers.
///
/// An answer fits an offer when:
/// - it has `server_no_context_takeover` if the offer asked for it (the server MUST then
///   include it; it may also include it unasked);
/// - it has `server_max_window_bits` no larger than the offer's, if the offer had one (without
///   one in the offer, any 8..=15 is allowed);
/// - it has `client_max_window_bits` only if the offer had it, and no larger than the offer's
///   value when it had one;
/// - `client_no_context_takeover` is always allowed.
///
/// In the agreed parameters, our own side resets its context if either the offer announced it
/// or the server asked for it, and uses the smaller of the offered and answered window.
pub fn client_accept_response(
    cfg: &DeflateConfig,
    values: &[&str],
) -> Result<Option<DeflateParams>, NegotiationError> {
    let list = parse_extensions(values).map_err(NegotiationError::Malformed)?;
    let mut agreed = None;
    for ext in &list {
        if !ext.name.eq_ignore_ascii_case(EXTENSION_NAME) || cfg.offers.is_empty() {
            return Err(NegotiationError::UnexpectedExtension(ext.name.clone()));
        }
        if agreed.is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
        agreed = Some(agree(cfg, &ext.params)?);
    }
    Ok(agreed)
}

/// Client role: the agreed parameters for the server's answer to our offers (one list element's
/// parameters), or why it is unacceptable.
pub(super) fn agree(
    cfg: &DeflateConfig,
    params: &Params,
) -> Result<DeflateParams, NegotiationError> {
    let answer = parse_response_params(params)?;
    cfg.offers
        .iter()
        .find_map(|offer| answer.agree_with(offer))
        .ok_or(NegotiationError::Incompatible)
}

/// Server role: picks the first acceptable permessage-deflate offer among every
/// `Sec-WebSocket-Extensions` value of the request, and returns the agreed parameters together
/// with the exact value to answer in the response's `Sec-WebSocket-Extensions` header.
///
/// Returns `None` to decline (no offer, no acceptable offer, or a malformed header). Offers of
/// other extensions are ignored. An offer with an unknown parameter, a duplicate parameter or an
/// invalid value is skipped, and the next one is tried (RFC 7692 §5, §7).
///
/// Policy, from `cfg`: we compress with `min(cfg.server_max_window_bits, offered
/// server_max_window_bits)` and say so when it is below 15 or the client asked; we ask the
/// client for `cfg.client_max_window_bits` (or its own smaller value) only when its offer has
/// `client_max_window_bits` and the result is below 15; `server_no_context_takeover` is answered
/// when offered or configured; `client_no_context_takeover` is answered (acknowledged) when
/// offered or configured.
pub fn server_negotiate(cfg: &DeflateConfig, values: &[&str]) -> Option<(DeflateParams, String)> {
    let factory: Arc<dyn ExtensionFactory> = Arc::new(DeflateFactory::new(cfg.clone()));
    let chain = crate::extension::server_negotiate(&[factory], values);
    let params = chain
        .iter()
        .find_map(|e| e.as_any().downcast_ref::<DeflateExtension>())?
        .params();
    Some((*params, chain.header()?.to_string()))
}

/// Server role: the agreed parameters and the answer's parameters for one offer (one list
/// element's parameters), or `None` to skip it.
pub(super) fn accept(cfg: &DeflateConfig, offer: &Params) -> Option<(DeflateParams, Params)> {
    let parsed = parse_offer_params(offer)?;
    Some(accept_offer(cfg, &parsed))
}

// ---------------------------------------------------------------------------------------------
// Negotiation helpers
// ---------------------------------------------------------------------------------------------

/// A validated permessage-deflate offer as the server reads it.
#[derive(Default)]
pub(super) struct ParsedOffer {
    pub(super) server_no_context_takeover: bool,
    pub(super) client_no_context_takeover: bool,
    pub(super) server_max_window_bits: Option<u8>,
    pub(super) client_max_window_bits: ClientWindowBits,
}

/// A validated permessage-deflate answer as the client reads it.
#[derive(Default)]
struct ParsedAnswer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
}

impl ParsedAnswer {
    /// The agreed parameters if this answer fits `offer`.
    fn agree_with(&self, offer: &DeflateOffer) -> Option<DeflateParams> {
        if offer.server_no_context_takeover && !self.server_no_context_takeover {
            return None;
        }
        if let Some(asked) = offer.server_max_window_bits {
            match self.server_max_window_bits {
                Some(bits) if bits <= clamp_bits(asked) => {}
                _ => return None,
            }
        }
        let client_bits = match (offer.client_max_window_bits, self.client_max_window_bits) {
            (ClientWindowBits::Absent, Some(_)) => return None,
            (ClientWindowBits::Bits(ours), Some(bits)) if bits > clamp_bits(ours) => return None,
            (_, Some(bits)) => bits,
            (ClientWindowBits::Bits(ours), None) => clamp_bits(ours),
            (_, None) => DEFAULT_WINDOW_BITS,
        };
        Some(DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover
                || offer.client_no_context_takeover,
            server_max_window_bits: self.server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS),
            client_max_window_bits: client_bits,
        })
    }
}

/// Reads the parameters of an answer; any problem is fatal for the client.
fn parse_response_params(
    params: &[(String, Option<String>)],
) -> Result<ParsedAnswer, NegotiationError> {
    let mut answer = ParsedAnswer::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let Some(index) = param_index(name) else {
            return Err(NegotiationError::UnknownParameter(name.clone()));
        };
        if !first_time(&mut seen, index) {
            return Err(NegotiationError::DuplicateParameter(name.clone()));
        }
        let invalid = || NegotiationError::InvalidValue(name.clone());
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err(invalid());
                }
                if index == 0 {
                    answer.server_no_context_takeover = true;
                } else {
                    answer.client_no_context_takeover = true;
                }
            }
            _ => {
                // In a response both window parameters carry a value.
                let bits = value.as_deref().and_then(parse_window_bits);
                let bits = bits.ok_or_else(invalid)?;
                if index == 2 {
                    answer.server_max_window_bits = Some(bits);
                } else {
                    answer.client_max_window_bits = Some(bits);
                }
            }
        }
    }
    Ok(answer)
}

/// Reads the parameters of one offer; `None` if the server must skip it.
pub(super) fn parse_offer_params(params: &[(String, Option<String>)]) -> Option<ParsedOffer> {
    let mut offer = ParsedOffer::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let index = param_index(name)?;
        if !first_time(&mut seen, index) {
            return None;
        }
        match (index, value.as_deref()) {
            (0, None) => offer.server_no_context_takeover = true,
            (1, None) => offer.client_no_context_takeover = true,
            (2, Some(v)) => offer.server_max_window_bits = Some(parse_window_bits(v)?),
            (3, None) => offer.client_max_window_bits = ClientWindowBits::NoValue,
            (3, Some(v)) => {
                offer.client_max_window_bits = ClientWindowBits::Bits(parse_window_bits(v)?)
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// Applies the server policy of `cfg` to an acceptable offer: the agreed parameters and the
/// answer's.
fn accept_offer(cfg: &DeflateConfig, offer: &ParsedOffer) -> (DeflateParams, Params) {
    let server_bits = clamp_bits(cfg.server_max_window_bits)
        .min(offer.server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS));
    let announce_server_bits =
        offer.server_max_window_bits.is_some() || server_bits < DEFAULT_WINDOW_BITS;
    let client_bits = match offer.client_max_window_bits {
        ClientWindowBits::Absent => None,
        ClientWindowBits::NoValue => Some(clamp_bits(cfg.client_max_window_bits)),
        ClientWindowBits::Bits(v) => Some(clamp_bits(cfg.client_max_window_bits).min(v)),
    }
    .filter(|&bits| bits < DEFAULT_WINDOW_BITS);
    let params = DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover
            || cfg.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover
            || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits.unwrap_or(DEFAULT_WINDOW_BITS),
    };
    let mut answer = Params::new();
    if params.server_no_context_takeover {
        answer.push((SERVER_NO_CONTEXT_TAKEOVER.into(), None));
    }
    if params.client_no_context_takeover {
        answer.push((CLIENT_NO_CONTEXT_TAKEOVER.into(), None));
    }
    if announce_server_bits {
        answer.push((SERVER_MAX_WINDOW_BITS.into(), Some(server_bits.to_string())));
    }
    if let Some(bits) = client_bits {
        answer.push((CLIENT_MAX_WINDOW_BITS.into(), Some(bits.to_string())));
    }
    (params, answer)
}

/// Position of a known parameter in `[snct, cnct, smwb, cmwb]`.
fn param_index(name: &str) -> Option<usize> {
    [
        SERVER_NO_CONTEXT_TAKEOVER,
        CLIENT_NO_CONTEXT_TAKEOVER,
        SERVER_MAX_WINDOW_BITS,
        CLIENT_MAX_WINDOW_BITS,
    ]
    .iter()
    .position(|known| known.eq_ignore_ascii_case(name))
}

/// A window-bits value: a decimal 8..=15 without leading zeros (RFC 7692 §7.1.2).
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=DEFAULT_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, DEFAULT_WINDOW_BITS)
}

/// Marks parameter `index` as seen; `false` if it was seen before (or is out of range).
fn first_time(seen: &mut [bool; 4], index: usize) -> bool {
    seen.get_mut(index)
        .is_some_and(|s| !std::mem::replace(s, true))
}
