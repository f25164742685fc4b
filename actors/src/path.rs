//! How a call reaches its voice session, decided once: where the call
//! starts or is adopted, from what the store recorded. Everything that
//! differs between the kinds of call asks the path, so a kind that one
//! rule forgot is a compile error, not a branch that falls through.
//!
//! | path | what scribe does when its socket ends | how scribe ends the call |
//! |---|---|---|
//! | [`CallPath::Owned`] | opens a new session and replays (or seeds) the stored lines | closes its session |
//! | [`CallPath::Attached`] | re-attaches to the same call and recovers what it missed | the carrier's hang-up ([`HangUp`]) |

use crate::domain::{Transport, VoiceApi};

/// Who carries a call scribe attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A browser, over WebRTC.
    WebRtc,
    /// A phone, over SIP.
    Sip,
}

/// Where an attached conversation continues after scribe was away (another
/// socket, actor, process or instance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The item id of the highest-numbered stored line that is not `lost`
    /// (Realtime: the next item's `previous_item_id` names it).
    pub last_item_id: Option<String>,
    /// Where the highest-numbered stored line ended on the session's clock
    /// (GPT-Live: what was said after it while scribe was away is a gap).
    pub last_end_ms: Option<i64>,
}

/// How scribe ends a call it is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// `session.close` on the sideband, read until `session.closed`
    /// (GPT-Live over WebRTC: OpenAI documents its REST hang-up for SIP
    /// calls only).
    SessionClose,
    /// The provider's REST hang-up (`POST .../hangup`).
    Rest,
}

/// How a call reaches its voice session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPath {
    /// scribe opens the session (OpenAI's socket, or Stream's agent
    /// endpoint) and owns it.
    Owned { api: VoiceApi },
    /// scribe attaches a sideband to a call someone else carries.
    Attached {
        api: VoiceApi,
        carrier: Carrier,
        /// OpenAI's id of the call (`rtc_...`, a GPT-Live session id).
        provider_call_id: String,
        resume: Resume,
    },
}

impl CallPath {
    /// The path of a call as the store recorded it. A call whose voice API
    /// was not recorded started before scribe spoke GPT-Live: Realtime. A
    /// call on an attached transport without the provider's call id has
    /// nothing to attach to: scribe owns its session.
    pub fn recorded(
        transport: Option<Transport>,
        provider_call_id: Option<String>,
        api: Option<VoiceApi>,
        resume: Resume,
    ) -> Self {
        let api = api.unwrap_or(VoiceApi::Realtime);
        let carrier = match transport {
            Some(Transport::WebRtc) => Some(Carrier::WebRtc),
            Some(Transport::Sip) => Some(Carrier::Sip),
            Some(Transport::OpenAi | Transport::Stream) | None => None,
        };
        match (carrier, provider_call_id) {
            (Some(carrier), Some(provider_call_id)) => Self::Attached {
                api,
                carrier,
                provider_call_id,
                resume,
            },
            _ => Self::Owned { api },
        }
    }

    /// The voice protocol the session speaks.
    pub const fn api(&self) -> VoiceApi {
        match self {
            Self::Owned { api } | Self::Attached { api, .. } => *api,
        }
    }

    /// The provider's call a sideband attaches to; `None` when owned.
    pub fn attached_to(&self) -> Option<&str> {
        match self {
            Self::Owned { .. } => None,
            Self::Attached {
                provider_call_id, ..
            } => Some(provider_call_id),
        }
    }

    /// How scribe ends the provider's call; `None` when scribe owns the
    /// session (closing it ends it).
    pub const fn hang_up(&self) -> Option<HangUp> {
        match self {
            Self::Owned { .. } => None,
            Self::Attached {
                api: VoiceApi::Live,
                carrier: Carrier::WebRtc,
                ..
            } => Some(HangUp::SessionClose),
            Self::Attached { .. } => Some(HangUp::Rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_path_attaches_only_with_a_carrier_and_a_call_id() {
        let owned = CallPath::recorded(Some(Transport::OpenAi), None, None, Resume::default());
        assert_eq!(
            owned,
            CallPath::Owned {
                api: VoiceApi::Realtime
            }
        );
        let no_id = CallPath::recorded(
            Some(Transport::Sip),
            None,
            Some(VoiceApi::Live),
            Resume::default(),
        );
        assert_eq!(
            no_id,
            CallPath::Owned {
                api: VoiceApi::Live
            }
        );
        let attached = CallPath::recorded(
            Some(Transport::Sip),
            Some("rtc_1".into()),
            Some(VoiceApi::Live),
            Resume::default(),
        );
        assert_eq!(attached.attached_to(), Some("rtc_1"));
        assert_eq!(attached.hang_up(), Some(HangUp::Rest));
    }

    #[test]
    fn only_a_gpt_live_webrtc_call_is_hung_up_on_its_sideband() {
        for api in VoiceApi::ALL {
            for transport in Transport::ALL {
                let path = CallPath::recorded(
                    Some(*transport),
                    Some("rtc_1".into()),
                    Some(*api),
                    Resume::default(),
                );
                let expected = match (api, transport) {
                    (_, Transport::OpenAi | Transport::Stream) => None,
                    (VoiceApi::Live, Transport::WebRtc) => Some(HangUp::SessionClose),
                    _ => Some(HangUp::Rest),
                };
                assert_eq!(path.hang_up(), expected, "{api} {transport}");
            }
        }
    }
}
