//! The opening handshake, both roles.

use super::*;

impl Connection {
    /// Server role: accepts the upgrade request announced by
    /// [`Event::UpgradeRequest`]. The extensions (permessage-deflate and any
    /// other) are negotiated from the configuration, or from what `accept`
    /// chose for this request ([`Accept::extensions`], [`Accept::decline`]).
    pub fn accept(&mut self, accept: Accept) -> Result<(), Error> {
        let Handshake::ServerAwaitDecision(d) = &self.hs else {
            return Err(self.invalid("accept"));
        };
        let Decision {
            key,
            protocols,
            offers,
        } = &**d;
        let (headers, chain) =
            crate::upgrade::accept_response(&self.cfg, Http::V1, key, protocols, offers, &accept)?;
        handshake::write_switching(&headers, &mut self.raw_out);
        self.install(Upgraded {
            side: Side::Server,
            protocol: accept.protocol,
            chain,
            headers: Vec::new(),
        });
        self.process_frames();
        Ok(())
    }

    /// Server role: refuses the upgrade request with an HTTP status, extra
    /// headers and a body; the connection then closes.
    pub fn reject(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), Error> {
        if !matches!(self.hs, Handshake::ServerAwaitDecision(_)) {
            return Err(self.invalid("reject"));
        }
        crate::upgrade::check_reject(status, headers)?;
        handshake::write_reject(status, headers, body, &mut self.raw_out);
        self.initiator = Some(Initiator::Local);
        self.set_failure(ConnectionError::Handshake(HandshakeError::Rejected(status)));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.schedule_shutdown(true);
        Ok(())
    }

    pub(super) fn process(&mut self) {
        match self.hs {
            Handshake::Done => self.process_frames(),
            Handshake::ServerAwaitRequest => self.process_request(),
            Handshake::ClientAwaitResponse { .. } => self.process_response(),
            Handshake::ServerAwaitDecision(_) => {
                // Bytes after the request wait for the application's answer,
                // but never more than one maximal frame.
                let most = self.cfg.limits.frame_payload_limit();
                if self.rbuf.len() > most.saturating_add(FrameHeader::MAX_LEN) {
                    self.rbuf.clear();
                    self.server_reject_request(
                        400,
                        HandshakeError::Malformed(
                            "too much data before the handshake completed".into(),
                        ),
                    );
                }
            }
            Handshake::ClientReadBody { .. } | Handshake::Failed => {}
        }
    }

    pub(super) fn process_request(&mut self) {
        match handshake::parse_request(&self.rbuf, &self.cfg.limits) {
            Ok(None) => {}
            Ok(Some((parsed, n))) => {
                self.rbuf.advance(n);
                self.hs = Handshake::ServerAwaitDecision(Box::new(Decision {
                    key: parsed.key,
                    protocols: parsed.request.protocols.clone(),
                    offers: parsed.request.extensions.clone(),
                }));
                self.events
                    .push_back(Event::UpgradeRequest(Box::new(parsed.request)));
                self.process();
            }
            Err(rej) => {
                self.rbuf.clear();
                self.server_reject_request(rej.status, rej.error);
            }
        }
    }

    pub(super) fn server_reject_request(&mut self, status: u16, error: HandshakeError) {
        handshake::write_reject(
            status,
            &[],
            handshake::reason_phrase(status).as_bytes(),
            &mut self.raw_out,
        );
        self.initiator.get_or_insert(Initiator::Remote);
        self.set_failure(ConnectionError::Handshake(error));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.schedule_shutdown(true);
    }

    pub(super) fn process_response(&mut self) {
        let resp = match handshake::parse_response(&self.rbuf, &self.cfg.limits) {
            Ok(None) => return,
            Ok(Some((resp, n))) => {
                self.rbuf.advance(n);
                resp
            }
            Err(e) => return self.fail_handshake(e, true),
        };
        if resp.status != 101 {
            let declared = resp
                .all("content-length")
                .next()
                .and_then(|v| v.trim().parse::<usize>().ok());
            let take = declared.unwrap_or(self.rbuf.len()).min(MAX_ERROR_BODY);
            let mut body = Vec::with_capacity(take);
            let now = take.min(self.rbuf.len());
            body.extend_from_slice(self.rbuf.get(..now).unwrap_or_default());
            self.rbuf.clear();
            self.hs = Handshake::ClientReadBody {
                head: Box::new(ErrorHead {
                    status: resp.status,
                    reason: resp.reason,
                    headers: resp.headers,
                }),
                body: Box::new(body),
                want: take,
            };
            if now >= take {
                self.finish_error_response();
            }
            return;
        }
        let Handshake::ClientAwaitResponse { upgrade } =
            std::mem::replace(&mut self.hs, Handshake::Failed)
        else {
            return;
        };
        match upgrade.finish(resp.status, resp.headers) {
            Ok(upgraded) => self.install(upgraded),
            Err(e) => return self.fail_handshake(e, true),
        }
        self.process_frames();
    }

    pub(super) fn finish_error_response(&mut self) {
        let hs = std::mem::replace(&mut self.hs, Handshake::Failed);
        if let Handshake::ClientReadBody { head, body, .. } = hs {
            let ErrorHead {
                status,
                reason,
                headers,
            } = *head;
            self.fail_handshake(
                HandshakeError::Status {
                    status,
                    reason,
                    headers,
                    body: *body,
                },
                false,
            );
        }
    }

    pub(super) fn fail_handshake(&mut self, e: HandshakeError, local: bool) {
        if local {
            self.initiator.get_or_insert(Initiator::Local);
        }
        self.initiator.get_or_insert(Initiator::Remote);
        self.set_failure(ConnectionError::Handshake(e));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.abandon_output();
        self.schedule_shutdown(false);
    }

    /// Takes what the handshake agreed and opens.
    pub(super) fn install(&mut self, upgraded: Upgraded) {
        self.protocol = upgraded.protocol.map(Box::new);
        self.ext = upgraded.chain;
        self.open(upgraded.headers);
    }

    pub(super) fn open(&mut self, headers: Vec<(String, String)>) {
        self.hs = Handshake::Done;
        self.timers.clear(Timer::Handshake);
        self.last_received = Some(self.now);
        self.last_heard = Some(self.now);
        if let Some(every) = self.cfg.ping_interval {
            self.timers.set(Timer::Ping, after(self.now, every));
        }
        self.events.push_back(Event::Open(Box::new(OpenInfo {
            protocol: self.subprotocol().map(str::to_string),
            extensions: self.ext.header().map(str::to_string),
            headers,
        })));
    }
}
