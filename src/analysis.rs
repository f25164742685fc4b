//! Post-call analysis: the LLM client with its single retry policy, and
//! (coming with the analysis issue) the AnalysisActor that drives it.

pub mod analyzer;
pub mod llm;
