//! Membership in memory: every life of every instance, heartbeats, and
//! the taking of calls, as the real store does them.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Memory, MemoryStore};
use crate::domain::MeetingStatus;
use crate::ids::MeetingId;
use crate::ports::{Claimed, Heartbeat, LeaseStore, Member, PortError};

/// How a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Live,
    Released,
    Dead,
}

#[derive(Debug, Clone, Copy)]
pub struct FakeMember {
    pub state: MemberState,
    pub heartbeat: Instant,
}

impl Memory {
    pub(super) fn is_live(&self, member: &Member) -> bool {
        self.members
            .get(member)
            .is_some_and(|m| m.state == MemberState::Live)
    }

    /// Takes the call for `member` when the real store would; says whether
    /// its last holder left without releasing it.
    fn take(&mut self, meeting: MeetingId, member: &Member) -> Option<Claimed> {
        if !self.is_live(member) {
            return None;
        }
        let holder = self.meetings.get(&meeting)?.owner.clone();
        let holder_live = holder.as_ref().is_some_and(|h| self.is_live(h));
        let holder_released = holder.as_ref().is_some_and(|h| {
            self.members
                .get(h)
                .is_some_and(|m| m.state == MemberState::Released)
        });
        let fake = self.meetings.get_mut(&meeting)?;
        if fake.status != MeetingStatus::Active {
            return None;
        }
        let after_crash = match &holder {
            None => false,
            Some(h) if h == member => false,
            Some(_) if holder_live => return None,
            Some(_) => !holder_released,
        };
        if holder.as_ref() != Some(member) {
            fake.lease_epoch += 1;
            fake.owner = Some(member.clone());
        }
        Some(Claimed {
            meeting,
            lease: fake.lease_epoch,
            after_crash,
        })
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn join(&self, instance: &str) -> Result<Member, PortError> {
        Ok(self.update(|m| {
            let mut epoch = 0;
            for (member, fake) in m.members.iter_mut() {
                if member.instance == instance {
                    epoch = epoch.max(member.epoch);
                    if fake.state == MemberState::Live {
                        fake.state = MemberState::Dead;
                    }
                }
            }
            let member = Member {
                instance: instance.to_owned(),
                epoch: epoch + 1,
            };
            m.members.insert(
                member.clone(),
                FakeMember {
                    state: MemberState::Live,
                    heartbeat: Instant::now(),
                },
            );
            member
        }))
    }

    async fn acquire_lease(
        &self,
        meeting: MeetingId,
        member: &Member,
    ) -> Result<Option<Claimed>, PortError> {
        Ok(self.update(|m| m.take(meeting, member)))
    }

    async fn heartbeat(&self, member: &Member) -> Result<Heartbeat, PortError> {
        Ok(self.update(|m| {
            *m.heartbeats.entry(member.instance.clone()).or_default() += 1;
            let alive = match m.members.get_mut(member) {
                Some(fake) if fake.state == MemberState::Live => {
                    fake.heartbeat = Instant::now();
                    true
                }
                _ => false,
            };
            Heartbeat {
                alive,
                end_requested: m
                    .meetings
                    .iter()
                    .filter(|(_, f)| {
                        f.status == MeetingStatus::Active && f.owner.as_ref() == Some(member)
                    })
                    .filter_map(|(id, f)| f.end_requested_at.map(|at| (*id, at)))
                    .collect(),
            }
        }))
    }

    async fn take_over(
        &self,
        member: &Member,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, PortError> {
        Ok(self.update(|m| {
            for fake in m.members.values_mut() {
                if fake.state == MemberState::Live && fake.heartbeat.elapsed() > ttl {
                    fake.state = MemberState::Dead;
                }
            }
            // Calls of members no longer live (the fake has no start that
            // dies before taking its call: unheld calls stay with their starter).
            let held: Vec<MeetingId> = m
                .meetings
                .iter()
                .filter(|(_, f)| f.status == MeetingStatus::Active)
                .filter(|(_, f)| f.owner.as_ref().is_some_and(|h| !m.is_live(h)))
                .map(|(id, _)| *id)
                .take(limit)
                .collect();
            held.into_iter()
                .filter_map(|meeting| m.take(meeting, member))
                .collect()
        }))
    }

    async fn owned_calls(&self, member: &Member) -> Result<Vec<MeetingId>, PortError> {
        Ok(self.read(|m| {
            m.meetings
                .iter()
                .filter(|(_, f)| {
                    f.status == MeetingStatus::Active && f.owner.as_ref() == Some(member)
                })
                .map(|(id, _)| *id)
                .collect()
        }))
    }

    async fn release(&self, member: &Member) -> Result<(), PortError> {
        self.update(|m| {
            if let Some(fake) = m.members.get_mut(member)
                && fake.state == MemberState::Live
            {
                fake.state = MemberState::Released;
            }
        });
        Ok(())
    }
}
