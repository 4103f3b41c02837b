//! Where a send's threads ran.

/// Where the engine's threads ran.
#[napi(object)]
pub struct BindingPlacement {
    pub reason: String,
    pub pinned: bool,
    /// Why threads were not pinned, when they were not.
    pub fallback: Option<String>,
    pub disk_cpus: String,
    pub net_cpus: String,
    pub other_cpus: String,
    pub disk_node: Option<u32>,
    pub net_node: Option<u32>,
    pub threads: Vec<BindingThreadPin>,
}

/// One engine thread bound to a CPU.
#[napi(object)]
pub struct BindingThreadPin {
    pub name: String,
    pub tid: i32,
    pub cpu: u32,
    /// Why binding failed, if it did.
    pub error: Option<String>,
}
