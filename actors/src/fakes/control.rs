//! [`FakeControl`]: the provider's REST hang-up, recording every call.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::domain::VoiceApi;
use crate::ports::{CallControl, PortError};

#[derive(Default)]
pub struct FakeControl {
    hung_up: Mutex<Vec<(VoiceApi, String)>>,
}

impl FakeControl {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The calls hung up so far, in order, with the API used.
    pub fn hung_up(&self) -> Vec<(VoiceApi, String)> {
        self.hung_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl CallControl for FakeControl {
    async fn hang_up(&self, api: VoiceApi, call_id: &str) -> Result<(), PortError> {
        self.hung_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((api, call_id.to_owned()));
        Ok(())
    }
}
