//! A real WebRTC endpoint (str0m, sans-IO, on a loopback UDP socket): the
//! simulated OpenAI answers a browser's offer with it, and the demo uses it
//! as its own caller. ICE, DTLS and SRTP are real; the audio sent is Opus
//! silence (the simulator has no voice), 50 packets a second, so a browser
//! plays a live remote track and the other side sees packets arrive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::crypto::from_feature_flags;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

/// One 20 ms Opus frame of silence (TOC: CELT fullband, 20 ms, mono).
const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
const FRAME: Duration = Duration::from_millis(20);
const SAMPLES_PER_FRAME: u64 = 960;
/// A caller that has not connected by then never will.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(60);

/// Why a media endpoint stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEnd {
    /// Asked to stop (the call ended on this side).
    Stopped,
    /// The other side went away (ICE lost the peer: a closed tab).
    PeerGone,
    /// The other side never connected within [`CONNECT_WITHIN`].
    NeverConnected,
    Failed(String),
}

/// What a media endpoint did, for tests and the demo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCounts {
    pub sent: u64,
    pub received: u64,
}

/// A media endpoint, negotiated and ready to run.
pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Option<Mid>,
}

/// An offer sent, waiting for its answer.
pub struct Offering {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pending: SdpPendingOffer,
}

async fn endpoint() -> Result<(Rtc, UdpSocket, SocketAddr), String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(from_feature_flags()))
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate)
        .ok_or("the host candidate was refused")?;
    Ok((rtc, socket, local))
}

/// Answers an SDP offer; the error says why it is not one.
pub async fn answer(offer: &str) -> Result<(String, Peer), String> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("not an SDP offer: {e}"))?;
    let (mut rtc, socket, local) = endpoint().await?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("the offer cannot be answered: {e}"))?;
    let peer = Peer {
        rtc,
        socket,
        local,
        mid: None,
    };
    Ok((answer.to_sdp_string(), peer))
}

/// Makes an offer with one two-way audio track (the demo's caller).
pub async fn offer() -> Result<(String, Offering), String> {
    let (mut rtc, socket, local) = endpoint().await?;
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().ok_or("nothing to offer")?;
    let offering = Offering {
        rtc,
        socket,
        local,
        mid,
        pending,
    };
    Ok((offer.to_sdp_string(), offering))
}

impl Offering {
    pub fn accept(mut self, answer: &str) -> Result<Peer, String> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| format!("not an SDP answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| format!("the answer does not fit the offer: {e}"))?;
        Ok(Peer {
            rtc: self.rtc,
            socket: self.socket,
            local: self.local,
            mid: Some(self.mid),
        })
    }
}

impl Peer {
    /// Runs until `stop` turns true or the other side goes away. Sends
    /// silence once connected; `first_audio` fires on the first audio
    /// packet received.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut first_audio: Option<oneshot::Sender<()>>,
        counts: Option<watch::Sender<MediaCounts>>,
    ) -> PeerEnd {
        let mut buf = vec![0u8; 2000];
        let mut tick = tokio::time::interval(FRAME);
        let mut connected = false;
        let mut tally = MediaCounts::default();
        let started = Instant::now();
        loop {
            let deadline = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => break at,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => connected = true,
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                            if connected =>
                        {
                            return PeerEnd::PeerGone;
                        }
                        Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                            self.mid.get_or_insert(added.mid);
                        }
                        Event::MediaData(_) => {
                            tally.received += 1;
                            if let Some(fire) = first_audio.take() {
                                let _ = fire.send(());
                            }
                        }
                        _ => {}
                    },
                    Err(e) => return PeerEnd::Failed(e.to_string()),
                }
            };
            if *stop.borrow() {
                self.rtc.disconnect();
                return PeerEnd::Stopped;
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        self.rtc.disconnect();
                        return PeerEnd::Stopped;
                    }
                }
                _ = tick.tick() => {
                    if !connected && started.elapsed() > CONNECT_WITHIN {
                        return PeerEnd::NeverConnected;
                    }
                    if connected && self.send_silence(started, tally.sent) {
                        tally.sent += 1;
                    }
                    if let Some(counts) = &counts {
                        counts.send_replace(tally);
                    }
                }
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { continue };
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    );
                    if let Err(e) = self.rtc.handle_input(input) {
                        return PeerEnd::Failed(e.to_string());
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return PeerEnd::Failed(e.to_string());
                    }
                }
            }
        }
    }

    fn send_silence(&mut self, started: Instant, frame: u64) -> bool {
        let Some(mid) = self.mid else { return false };
        let Some(writer) = self.rtc.writer(mid) else {
            return false;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            return false;
        };
        let time = MediaTime::new(frame * SAMPLES_PER_FRAME, Frequency::FORTY_EIGHT_KHZ);
        let wallclock = started + FRAME * frame as u32;
        writer
            .write(pt, wallclock, time, OPUS_SILENCE.to_vec())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wait_for(
        counts: &mut watch::Receiver<MediaCounts>,
        enough: impl Fn(MediaCounts) -> bool,
    ) {
        tokio::time::timeout(Duration::from_secs(20), counts.wait_for(|c| enough(*c)))
            .await
            .expect("media within 20 s")
            .expect("the endpoint is running");
    }

    #[tokio::test]
    async fn two_endpoints_connect_over_loopback_and_carry_audio_both_ways() {
        let (offer_sdp, offering) = offer().await.expect("an offer");
        let (answer_sdp, answerer) = answer(&offer_sdp).await.expect("an answer");
        assert!(answer_sdp.contains("opus/48000"), "{answer_sdp}");
        let caller = offering.accept(&answer_sdp).expect("the answer fits");

        let (stop_tx, stop) = watch::channel(false);
        let (heard_tx, heard) = oneshot::channel();
        let (caller_counts, mut caller_seen) = watch::channel(MediaCounts::default());
        let (answer_counts, mut answer_seen) = watch::channel(MediaCounts::default());
        let caller = tokio::spawn(caller.run(stop.clone(), None, Some(caller_counts)));
        let answerer = tokio::spawn(answerer.run(stop, Some(heard_tx), Some(answer_counts)));

        tokio::time::timeout(Duration::from_secs(20), heard)
            .await
            .expect("audio within 20 s")
            .expect("first audio reported");
        wait_for(&mut caller_seen, |c| c.received > 5 && c.sent > 5).await;
        wait_for(&mut answer_seen, |c| c.received > 5 && c.sent > 5).await;

        stop_tx.send_replace(true);
        assert_eq!(caller.await.expect("caller task"), PeerEnd::Stopped);
        assert_eq!(answerer.await.expect("answerer task"), PeerEnd::Stopped);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_is_noticed() {
        let (offer_sdp, offering) = offer().await.expect("an offer");
        let (answer_sdp, answerer) = answer(&offer_sdp).await.expect("an answer");
        let caller = offering.accept(&answer_sdp).expect("the answer fits");
        let (stop_caller, caller_stop) = watch::channel(false);
        let (_keep, answer_stop) = watch::channel(false);
        let (heard_tx, heard) = oneshot::channel();
        let caller = tokio::spawn(caller.run(caller_stop, None, None));
        let answerer = tokio::spawn(answerer.run(answer_stop, Some(heard_tx), None));
        heard.await.expect("first audio");
        stop_caller.send_replace(true);
        assert_eq!(caller.await.expect("caller task"), PeerEnd::Stopped);
        let end = tokio::time::timeout(Duration::from_secs(60), answerer)
            .await
            .expect("the answerer notices within 60 s")
            .expect("answerer task");
        assert_eq!(end, PeerEnd::PeerGone);
    }

    #[tokio::test]
    async fn garbage_is_not_an_offer() {
        for garbage in ["", "hello", "v=0\r\nm=audio"] {
            let refused = answer(garbage).await.err().expect("refused");
            assert!(refused.starts_with("not an SDP offer"), "{refused}");
        }
    }
}
