//! The restart budget: at most `max_restarts` restarts of one actor within
//! a sliding `window`. Time is tokio's, so a test can pause and move it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::exit::ExitReason;

/// At most `max_restarts` restarts of one actor within `window`.
#[derive(Debug, Clone, Copy)]
pub struct RestartBudget {
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartBudget {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The budget is spent: the actor is not restarted. Its text is the
/// meeting's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} died {deaths} times within {window_secs} s (last: {last}); gave up restarting it")]
pub struct BudgetSpent {
    pub what: &'static str,
    pub deaths: usize,
    pub window_secs: u64,
    pub last: String,
}

/// One actor's restarts within the budget's window.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    at: VecDeque<Instant>,
}

impl Restarts {
    /// Counts one more death of `what` against `budget`: `Ok` when it may
    /// be restarted, `Err` with the verdict when the budget is spent.
    pub fn spend(
        &mut self,
        budget: &RestartBudget,
        what: &'static str,
        why: &ExitReason,
    ) -> Result<(), BudgetSpent> {
        let now = Instant::now();
        self.at.retain(|t| now.duration_since(*t) < budget.window);
        if self.at.len() >= budget.max_restarts {
            return Err(BudgetSpent {
                what,
                deaths: self.at.len() + 1,
                window_secs: budget.window.as_secs(),
                last: why.to_string(),
            });
        }
        self.at.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: RestartBudget = RestartBudget {
        max_restarts: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn the_budget_refuses_the_restart_past_its_count_within_the_window() {
        let mut restarts = Restarts::default();
        for _ in 0..3 {
            restarts
                .spend(&BUDGET, "the call's actor", &ExitReason::Killed)
                .expect("within the budget");
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        let spent = restarts
            .spend(
                &BUDGET,
                "the call's actor",
                &ExitReason::Failed("boom".into()),
            )
            .expect_err("a fourth death within 60 s");
        assert_eq!(
            spent.to_string(),
            "the call's actor died 4 times within 60 s (last: failed: boom); gave up restarting it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deaths_older_than_the_window_no_longer_count() {
        let mut restarts = Restarts::default();
        for _ in 0..3 {
            restarts
                .spend(&BUDGET, "x", &ExitReason::Killed)
                .expect("within the budget");
        }
        // 59 s later the three deaths still count.
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(restarts.spend(&BUDGET, "x", &ExitReason::Killed).is_err());
        // A refused death is not counted: at 60 s the window is empty again.
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..3 {
            restarts
                .spend(&BUDGET, "x", &ExitReason::Killed)
                .expect("the window slid past the old deaths");
        }
        assert!(restarts.spend(&BUDGET, "x", &ExitReason::Killed).is_err());
    }
}
