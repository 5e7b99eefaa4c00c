//! `teleos.runner=kubernetes`: one Indexed Job per wave of stories.

use crate::error::{Error, Result};
use crate::settings::Settings;

use super::engine::{Engine, EngineError, JobContext, JobSpec};

/// A job template that cannot be filled.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the job template names an unknown placeholder {{{{{0}}}}}")]
    UnknownPlaceholder(String),
}

pub struct KubernetesEngine {}

impl KubernetesEngine {
    pub fn new(_settings: &Settings, _ctx: JobContext) -> Result<Self> {
        Err(Error::setup(
            "teleos.runner=kubernetes is not built yet",
            "use teleos.runner=command for now",
        ))
    }
}

impl Engine for KubernetesEngine {
    fn submit(&mut self, _wave: &[JobSpec]) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }
    fn poll(&mut self) -> Result<Vec<(String, EngineError)>, EngineError> {
        Ok(Vec::new())
    }
    fn cancel(&mut self, _key: &str) -> Result<(), EngineError> {
        Ok(())
    }
    fn finish(&mut self) {}
}
