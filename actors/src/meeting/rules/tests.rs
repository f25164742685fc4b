//! The meeting actor's rules, called directly: examples for each rule, and
//! properties of the rotation and re-attach rules over arbitrary timings.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::call_log::{CallEvent, Shown};
use crate::domain::VoiceApi;
use crate::voice::{self, VoiceProtocol};

fn config() -> CallConfig {
    CallConfig::default()
}

fn attached() -> PathState {
    PathState::Attached(AttachWatch::default())
}

fn ended<'a>(end: &'a SocketEnd, heard: bool, opened: Instant) -> Ended<'a> {
    Ended {
        end,
        heard,
        opened,
        refusal: None,
        already_shown: false,
        provider: "OpenAI Realtime",
    }
}

fn is_over(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::CallOver(_)))
}

#[test]
fn an_owned_session_that_ends_is_replaced_after_the_backoff() {
    let end = SocketEnd::Eof;
    let effects = socket_ended(
        &mut PathState::Owned,
        ended(&end, true, Instant::now()),
        Instant::now(),
        &config(),
    );
    assert_eq!(
        effects,
        vec![Effect::Connect {
            why: "the realtime session ended while the call is live".into(),
            when: When::Backoff { floor: None },
        }]
    );
}

#[test]
fn an_owned_session_closed_as_misconfigured_is_not_retried() {
    let end = SocketEnd::Closed {
        code: Some(4000),
        reason: String::new(),
    };
    let effects = socket_ended(
        &mut PathState::Owned,
        ended(&end, true, Instant::now()),
        Instant::now(),
        &config(),
    );
    let [Effect::Misconfigured(problem)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(
        problem.error,
        "OpenAI Realtime closed the session as misconfigured (close 4000)"
    );
    // A refusal the session already showed in its own words: nothing more.
    let shown_before = Ended {
        already_shown: true,
        ..ended(&end, true, Instant::now())
    };
    let effects = socket_ended(
        &mut PathState::Owned,
        shown_before,
        Instant::now(),
        &config(),
    );
    assert!(effects.is_empty(), "{effects:?}");
}

#[test]
fn a_live_sideband_lost_is_reattached_at_once_then_with_backoff() {
    let mut path = attached();
    let now = Instant::now();
    let end = SocketEnd::Eof;
    let first = socket_ended(&mut path, ended(&end, true, now), now, &config());
    assert!(matches!(
        first.as_slice(),
        [Effect::Connect {
            when: When::AtOnce,
            ..
        }]
    ));
    // The re-attach could not connect: the next try waits.
    let PathState::Attached(watch) = &mut path else {
        unreachable!()
    };
    let next = watch.reattach("timeout", None, now, &config(), "OpenAI Realtime");
    assert!(matches!(
        next,
        Effect::Connect {
            when: When::Backoff { floor: None },
            ..
        }
    ));
}

#[test]
fn a_refused_sideband_is_shown_and_retried_slowly_where_an_owned_one_is_misconfigured() {
    let refused = || ConnectError::Refused {
        provider: "OpenAI Realtime".into(),
        status: 403,
    };
    let now = Instant::now();
    let effects = connect_failed(&mut attached(), refused(), now, &config(), "x");
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Show(Shown::ConfigurationError, _),
            Effect::Connect {
                when: When::Backoff { floor: Some(_) },
                ..
            }
        ]
    ));
    let effects = connect_failed(&mut PathState::Owned, refused(), now, &config(), "x");
    assert!(matches!(effects.as_slice(), [Effect::Misconfigured(_)]));
    // A call the provider says does not exist is over, on any path.
    let gone = ConnectError::Gone {
        provider: "OpenAI Realtime".into(),
        call: "rtc_1".into(),
    };
    assert_eq!(
        connect_failed(&mut attached(), gone, now, &config(), "x"),
        vec![Effect::CallOver(
            "OpenAI Realtime answered that call rtc_1 does not exist".into()
        )]
    );
}

#[test]
fn gpt_live_session_closed_ends_an_attached_call_whatever_the_reason() {
    for reason in ["close_requested", "remote_hangup", "expired"] {
        assert_eq!(
            session_closed(&attached(), Some(reason.into())),
            vec![Effect::CallOver(format!(
                "GPT-Live closed the session: {reason}"
            ))]
        );
    }
    let content = session_closed(&attached(), Some("content".into()));
    assert!(matches!(
        content.as_slice(),
        [Effect::Show(Shown::SessionClosed, _), Effect::CallOver(_)]
    ));
    // Owned: an expired session is replaced; a hang-up ends the call; any
    // other reason is shown and the session replaced.
    assert!(matches!(
        session_closed(&PathState::Owned, Some("expired".into())).as_slice(),
        [Effect::Log(CallEvent::SessionClosed(_))]
    ));
    assert!(is_over(&session_closed(
        &PathState::Owned,
        Some("remote_hangup".into())
    )));
    assert!(matches!(
        session_closed(&PathState::Owned, None).as_slice(),
        [Effect::Show(Shown::SessionClosed, _)]
    ));
}

#[test]
fn a_refused_setup_ends_a_gpt_live_session_and_is_only_logged_on_a_reattach() {
    let error = |event_id: &str| ErrorInfo {
        code: Some("unknown_parameter".into()),
        message: "Unknown parameter".into(),
        param: Some("session.voice".into()),
        event_id: Some(event_id.into()),
        ..ErrorInfo::default()
    };
    let live = voice::protocol(VoiceApi::Live).setup();
    let (effects, refusal) = setup_refused(live, false, "GPT-Live", &error(live.event_id));
    let [Effect::Misconfigured(problem)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(
        problem.error,
        "GPT-Live refused scribe's session (session.start): unknown_parameter for `session.voice`"
    );
    assert_eq!(
        refusal.as_deref(),
        Some("unknown_parameter: Unknown parameter")
    );
    let realtime = voice::protocol(VoiceApi::Realtime).setup();
    let (effects, refusal) = setup_refused(
        realtime,
        false,
        "OpenAI Realtime",
        &error(realtime.event_id),
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Show(Shown::ConfigurationError, _)]
    ));
    assert_eq!(refusal, None);
    let (effects, _) = setup_refused(realtime, true, "OpenAI Realtime", &error(realtime.event_id));
    let [Effect::Log(CallEvent::RealtimeError(logged))] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(logged.reattach, Some(true));
}

#[test]
fn only_an_owned_path_rotates_and_only_with_an_expiry() {
    let config = config();
    assert_eq!(
        rotation_schedule(&PathState::Owned, Some(1_000 + 3_600), 1_000, &config),
        Some((
            Duration::from_secs(3_600),
            Duration::from_secs(3_600) - config.rotate_before_expiry
        ))
    );
    assert_eq!(
        rotation_schedule(&PathState::Owned, None, 1_000, &config),
        None
    );
    assert_eq!(
        rotation_schedule(&attached(), Some(4_600), 1_000, &config),
        None
    );
}

/// One socket of an attached call as the rule sees it: how long after the
/// previous event it opened, whether the service spoke on it, how long it
/// lasted.
#[derive(Debug, Clone)]
struct Socket {
    gap_ms: u64,
    heard: bool,
    lasted_ms: u64,
}

fn sockets() -> impl Strategy<Value = Vec<Socket>> {
    proptest::collection::vec(
        (0..30_000u64, any::<bool>(), 0..30_000u64).prop_map(|(gap_ms, heard, lasted_ms)| Socket {
            gap_ms,
            heard,
            lasted_ms,
        }),
        1..12,
    )
}

proptest! {
    /// Between turns a session is always replaced, unforced; mid-turn only
    /// when it expires within `rotate_force_before`, else the timer looks
    /// again after `rotate_retry`.
    #[test]
    fn rotation_is_forced_only_close_to_the_expiry(
        idle in any::<bool>(),
        left_ms in proptest::option::of(0..600_000u64),
    ) {
        let config = config();
        let now = Instant::now();
        let expires = left_ms.map(|ms| now + Duration::from_millis(ms));
        let decided = rotation(idle, expires, now, &config);
        let close = left_ms.is_some_and(|ms| Duration::from_millis(ms) <= config.rotate_force_before);
        let expected = match (idle, close) {
            (true, _) => Rotation::Now { forced: false },
            (false, true) => Rotation::Now { forced: true },
            (false, false) => Rotation::Later(config.rotate_retry),
        };
        prop_assert_eq!(decided, expected);
    }

    /// An owned session's rotation timer fires `rotate_before_expiry`
    /// before it expires (at once when less is left), never after it.
    #[test]
    fn rotation_is_armed_before_the_expiry(now in 0..2_000_000_000i64, left in -100..100_000i64) {
        let config = config();
        let (has, delay) = rotation_schedule(&PathState::Owned, Some(now + left), now, &config)
            .expect("an owned session with an expiry rotates");
        prop_assert_eq!(has, Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        prop_assert!(delay <= has);
        if has > config.rotate_before_expiry {
            prop_assert_eq!(has - delay, config.rotate_before_expiry);
        } else {
            prop_assert_eq!(delay, Duration::ZERO);
        }
    }

    /// The re-attach rule against a model of it: an attached call is over
    /// exactly when `attach_gone_after` sockets in a row ended early
    /// without a word, or no socket was alive for `reattach_window`; a
    /// socket the service spoke on (or that lasted `attach_grace`) starts
    /// the count again, and its loss is re-attached at once.
    #[test]
    fn an_attached_call_is_over_exactly_when_the_sideband_stays_lost(sockets in sockets()) {
        let config = config();
        let mut path = attached();
        let start = Instant::now();
        let mut now = start;
        let (mut empty, mut lost_since): (u32, Option<Instant>) = (0, None);
        for socket in &sockets {
            now += Duration::from_millis(socket.gap_ms);
            let opened = now;
            now += Duration::from_millis(socket.lasted_ms);
            let end = SocketEnd::Eof;
            let effects = socket_ended(
                &mut path,
                ended(&end, socket.heard, opened),
                now,
                &config,
            );
            let lasted = Duration::from_millis(socket.lasted_ms) >= config.attach_grace;
            if socket.heard || lasted {
                empty = 0;
                lost_since = Some(now);
            } else {
                empty += 1;
                lost_since.get_or_insert(now);
            }
            let over = empty >= config.attach_gone_after
                || lost_since.is_some_and(|s| now - s >= config.reattach_window);
            prop_assert_eq!(is_over(&effects), over, "{:?}", sockets);
            if over {
                return Ok(());
            }
            let at_once = matches!(effects.as_slice(), [Effect::Connect { when: When::AtOnce, .. }]);
            prop_assert_eq!(at_once, socket.heard || lasted);
        }
    }

    /// A refused or failed attach never goes at once when a floor is
    /// asked, and never outlives the window.
    #[test]
    fn failed_attaches_respect_their_floor_and_the_window(gaps in proptest::collection::vec(0..40_000u64, 1..10)) {
        let config = config();
        let mut watch = AttachWatch::default();
        let mut now = Instant::now();
        let mut first = None;
        for gap in gaps {
            now += Duration::from_millis(gap);
            // The sideband counts as lost from the first failed attach.
            let first = *first.get_or_insert(now);
            let effect = watch.reattach("refused", Some(config.refused_retry), now, &config, "x");
            let over = now - first >= config.reattach_window;
            match effect {
                Effect::CallOver(_) => prop_assert!(over),
                Effect::Connect { when, .. } => {
                    prop_assert!(!over);
                    prop_assert_eq!(when, When::Backoff { floor: Some(config.refused_retry) });
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}

#[test]
fn each_protocol_opens_each_path_as_documented() {
    let settings = crate::voice::SessionSettings {
        instructions: "Be brief.",
        voice: "marin",
        transcription_model: "gpt-live-transcribe",
        live_model: "gpt-live-1.1",
    };
    let attached = CallPath::Attached {
        api: VoiceApi::Realtime,
        carrier: crate::path::Carrier::Sip,
        provider_call_id: "rtc_1".into(),
        resume: crate::path::Resume::default(),
    };
    let owned = CallPath::Owned {
        api: VoiceApi::Realtime,
    };
    let seed = [(crate::domain::Speaker::User, "hello".to_owned())];
    let live: &dyn VoiceProtocol = voice::protocol(VoiceApi::Live);
    let realtime: &dyn VoiceProtocol = voice::protocol(VoiceApi::Realtime);
    // GPT-Live attached: nothing to send, nothing to confirm.
    let opening = live.opening(&attached, &settings, &[]);
    assert!(opening.setup.is_empty() && !opening.awaits_confirmation);
    // GPT-Live owned: one session.start carrying the seed.
    let opening = live.opening(&owned, &settings, &seed);
    assert_eq!((opening.setup.len(), opening.seeded), (1, 1));
    assert!(opening.setup[0].contains("\"session.start\""));
    // Realtime: a session.update either way; only the owned one is replayed.
    assert!(realtime.opening(&attached, &settings, &[]).setup[0].contains("session.update"));
    assert_eq!(realtime.history(&attached), crate::voice::History::None);
    assert_eq!(realtime.history(&owned), crate::voice::History::Replay);
    assert_eq!(live.history(&owned), crate::voice::History::Seed);
    assert_eq!(realtime.replay(&seed).len(), 1);
}
