//! `teleos.runner=slurm`: one `sbatch` array job per wave of stories, cancelled with `scancel`.
//!
//! Not built yet: the Slurm engine (helper `slurm`) replaces this file with an
//! [`Engine`](super::engine::Engine) of its own. Until then the runner is refused as a setup
//! error before anything is pushed.

use crate::error::{Error, Result};
use crate::settings::Settings;

use super::engine::{Engine, JobContext};

pub fn engine(_settings: &Settings, _ctx: JobContext) -> Result<Box<dyn Engine>> {
    Err(Error::setup(
        "teleos.runner=slurm is not built yet",
        "use teleos.runner=command with an sbatch command line for now (README, \"More than one machine\")",
    ))
}
