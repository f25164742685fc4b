//! Post-call analysis as the service provides it: the LLM client with its
//! single retry policy, and the prompts and answer validation that make it
//! the actors' `Analyzer` port. The AnalysisActor that drives it lives in
//! `scribe-actors` (`analysis`).

pub mod analyzer;
pub mod llm;
pub mod report;
