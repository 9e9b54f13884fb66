//! `GET /_cluster/health`: the deployment's health in Elasticsearch's
//! terms, and waiting for a condition on it.
//!
//! What the terms mean here: every live replica sharing the state store
//! is a node, and a data node (each serves the shared data store); every
//! shard of an index is a primary with no replicas, active once the index
//! is published (open or closed, as Elasticsearch counts closed indices),
//! so a published index is green. An index being restored on this node is
//! there before it is published: its shards that the restore has not
//! finished are initializing, and the index is yellow, Elasticsearch's
//! status for a primary that is first being recovered from a snapshot.
//! Nothing ever relocates, is unassigned, or waits in a task queue.
//!
//! Waiting follows Elasticsearch: each condition asked for (status, no
//! initializing or relocating shards, active shards, node count, and the
//! named indices existing) is checked until all hold or the timeout ends;
//! then the answer says `timed_out`. A named index that does not exist
//! makes the health red, and is itself waited for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Node, Result, ServiceError};
use crate::indices::IndexState;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    Green,
    Yellow,
    Red,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Green => "green",
            HealthStatus::Yellow => "yellow",
            HealthStatus::Red => "red",
        }
    }

    pub fn parse(s: &str) -> Option<HealthStatus> {
        match s {
            "green" => Some(HealthStatus::Green),
            "yellow" => Some(HealthStatus::Yellow),
            "red" => Some(HealthStatus::Red),
            _ => None,
        }
    }
}

/// `wait_for_nodes`: a node count, compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeCount {
    Eq(usize),
    Ge(usize),
    Le(usize),
    Gt(usize),
    Lt(usize),
}

impl NodeCount {
    /// `N`, `>=N`, `<=N`, `>N`, `<N`, or `ge(N)`, `le(N)`, `gt(N)`, `lt(N)`.
    pub fn parse(s: &str) -> Option<NodeCount> {
        let s = s.trim();
        let func = |name: &str| {
            s.strip_prefix(name)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        let n = |v: &str| v.trim().parse::<usize>().ok();
        if let Some(v) = s.strip_prefix(">=").or_else(|| func("ge")) {
            return n(v).map(NodeCount::Ge);
        }
        if let Some(v) = s.strip_prefix("<=").or_else(|| func("le")) {
            return n(v).map(NodeCount::Le);
        }
        if let Some(v) = s.strip_prefix('>').or_else(|| func("gt")) {
            return n(v).map(NodeCount::Gt);
        }
        if let Some(v) = s.strip_prefix('<').or_else(|| func("lt")) {
            return n(v).map(NodeCount::Lt);
        }
        n(s).map(NodeCount::Eq)
    }

    fn holds(self, nodes: usize) -> bool {
        match self {
            NodeCount::Eq(n) => nodes == n,
            NodeCount::Ge(n) => nodes >= n,
            NodeCount::Le(n) => nodes <= n,
            NodeCount::Gt(n) => nodes > n,
            NodeCount::Lt(n) => nodes < n,
        }
    }
}

/// `wait_for_active_shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveShards {
    All,
    AtLeast(u64),
}

/// What to report and what to wait for.
#[derive(Debug, Clone)]
pub struct HealthRequest {
    /// An index expression, `None` for the whole cluster.
    pub indices: Option<String>,
    /// Which states wildcards expand to (open, closed).
    pub expand_open: bool,
    pub expand_closed: bool,
    pub wait_for_status: Option<HealthStatus>,
    pub wait_for_nodes: Option<NodeCount>,
    pub wait_for_active_shards: Option<ActiveShards>,
    pub wait_for_no_initializing_shards: bool,
    pub wait_for_no_relocating_shards: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ShardHealth {
    pub shard: u32,
    pub status: HealthStatus,
    pub primary_active: bool,
    pub initializing: bool,
}

#[derive(Debug, Clone)]
pub struct IndexHealth {
    pub status: HealthStatus,
    pub number_of_shards: u32,
    pub active_shards: u64,
    pub initializing_shards: u64,
    pub shards: Vec<ShardHealth>,
}

#[derive(Debug, Clone)]
pub struct ClusterHealth {
    pub cluster_name: String,
    pub status: HealthStatus,
    pub timed_out: bool,
    pub number_of_nodes: usize,
    pub active_shards: u64,
    pub initializing_shards: u64,
    /// The indices the request selected, by name.
    pub indices: BTreeMap<String, IndexHealth>,
}

impl ClusterHealth {
    /// Elasticsearch's `active_shards_percent_as_number`: 100 with no shards.
    pub fn active_percent(&self) -> f64 {
        let total = self.active_shards + self.initializing_shards;
        if total == 0 {
            100.0
        } else {
            self.active_shards as f64 * 100.0 / total as f64
        }
    }

    /// How many of the request's wait conditions hold, of how many asked.
    fn conditions(&self, req: &HealthRequest, missing: bool) -> (usize, usize) {
        let checks = [
            req.wait_for_status.map(|s| self.status <= s),
            req.wait_for_no_relocating_shards.then_some(true),
            req.wait_for_no_initializing_shards
                .then_some(self.initializing_shards == 0),
            req.wait_for_active_shards.map(|a| match a {
                ActiveShards::All => self.initializing_shards == 0,
                ActiveShards::AtLeast(n) => self.active_shards >= n,
            }),
            req.wait_for_nodes.map(|n| n.holds(self.number_of_nodes)),
            req.indices.as_ref().map(|_| !missing),
        ];
        let asked = checks.iter().flatten().count();
        let held = checks.iter().flatten().filter(|ok| **ok).count();
        (held, asked)
    }
}

impl Node {
    /// `GET /_cluster/health[/{index}]`: the health now, or once the
    /// request's conditions hold, or at its timeout (then `timed_out`).
    pub async fn cluster_health(&self, req: &HealthRequest) -> Result<ClusterHealth> {
        if let Some(expr) = &req.indices {
            crate::es::expression::check_expression(expr)
                .map_err(|e| ServiceError::IllegalArgument(e.to_string()))?;
        }
        let deadline = Instant::now() + req.timeout;
        loop {
            let (mut health, missing) = self.health_now(req).await?;
            let (held, asked) = health.conditions(req, missing);
            if held == asked {
                return Ok(health);
            }
            let now = Instant::now();
            if now >= deadline {
                health.timed_out = true;
                return Ok(health);
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// The health at this instant, and whether a named index is missing.
    async fn health_now(&self, req: &HealthRequest) -> Result<(ClusterHealth, bool)> {
        let number_of_nodes = self.cluster.live_nodes().await?.len().max(1);
        // Published indices: every shard active.
        let mut all: BTreeMap<String, (u32, IndexState, Vec<bool>)> = BTreeMap::new();
        for name in self.indices.names().await {
            match self.indices.metadata(&name).await {
                Ok(m) => {
                    all.insert(
                        name,
                        (
                            m.number_of_shards,
                            m.state,
                            vec![false; m.number_of_shards as usize],
                        ),
                    );
                }
                // Deleted meanwhile.
                Err(crate::indices::IndexError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Restores running on this node: their unfinished shards (all of
        // them while the index is not published) are initializing.
        for (name, r) in self.restores.recoveries("*", true).await? {
            let published = all.contains_key(&name);
            let entry = all.entry(name).or_insert_with(|| {
                let n = r.shards.len() as u32;
                (n, IndexState::Open, vec![true; n as usize])
            });
            if published {
                for s in &r.shards {
                    if s.stage != "DONE" {
                        if let Some(init) = entry.2.get_mut(s.shard as usize) {
                            *init = true;
                        }
                    }
                }
            }
        }
        let (selected, missing) = match &req.indices {
            None => (all.keys().cloned().collect::<Vec<_>>(), false),
            Some(expr) => select(expr, &all, req),
        };
        let mut indices = BTreeMap::new();
        for name in selected {
            let (shards, _, initializing) = &all[&name];
            indices.insert(name, index_health(*shards, initializing));
        }
        let status = if missing {
            HealthStatus::Red
        } else {
            indices
                .values()
                .map(|i| i.status)
                .max()
                .unwrap_or(HealthStatus::Green)
        };
        let health = ClusterHealth {
            cluster_name: self.config.cluster_name.clone(),
            status,
            timed_out: false,
            number_of_nodes,
            active_shards: indices.values().map(|i| i.active_shards).sum(),
            initializing_shards: indices.values().map(|i| i.initializing_shards).sum(),
            indices: if missing { BTreeMap::new() } else { indices },
        };
        Ok((health, missing))
    }
}

fn index_health(shards: u32, initializing: &[bool]) -> IndexHealth {
    let shards: Vec<ShardHealth> = (0..shards)
        .map(|shard| {
            let init = initializing.get(shard as usize).copied().unwrap_or(false);
            ShardHealth {
                shard,
                status: if init {
                    HealthStatus::Yellow
                } else {
                    HealthStatus::Green
                },
                primary_active: !init,
                initializing: init,
            }
        })
        .collect();
    let initializing_shards = shards.iter().filter(|s| s.initializing).count() as u64;
    IndexHealth {
        status: shards
            .iter()
            .map(|s| s.status)
            .max()
            .unwrap_or(HealthStatus::Green),
        number_of_shards: shards.len() as u32,
        active_shards: shards.len() as u64 - initializing_shards,
        initializing_shards,
        shards,
    }
}

/// The indices `expr` names: concrete names as they are, wildcards
/// expanded to the states asked for; whether a concrete name is missing.
fn select(
    expr: &str,
    all: &BTreeMap<String, (u32, IndexState, Vec<bool>)>,
    req: &HealthRequest,
) -> (Vec<String>, bool) {
    let concrete: Vec<&str> = expr
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains('*') && !p.starts_with('-') && *p != "_all")
        .collect();
    let expandable: Vec<String> = all
        .iter()
        .filter(|(name, (_, state, _))| {
            concrete.contains(&name.as_str())
                || match state {
                    IndexState::Open => req.expand_open,
                    IndexState::Close => req.expand_closed,
                }
        })
        .map(|(name, _)| name.clone())
        .collect();
    match crate::es::expression::resolve(expr, &expandable) {
        Ok(r) => (r.names, !r.missing.is_empty()),
        Err(_) => (Vec::new(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_counts_parse_every_elasticsearch_form() {
        assert_eq!(NodeCount::parse("3"), Some(NodeCount::Eq(3)));
        assert_eq!(NodeCount::parse(">=2"), Some(NodeCount::Ge(2)));
        assert_eq!(NodeCount::parse("ge(2)"), Some(NodeCount::Ge(2)));
        assert_eq!(NodeCount::parse("<=1"), Some(NodeCount::Le(1)));
        assert_eq!(NodeCount::parse("lt(4)"), Some(NodeCount::Lt(4)));
        assert_eq!(NodeCount::parse(">1"), Some(NodeCount::Gt(1)));
        assert_eq!(NodeCount::parse("many"), None);
        assert_eq!(NodeCount::parse(">=x"), None);
        assert!(NodeCount::Ge(1).holds(1) && !NodeCount::Gt(1).holds(1));
    }

    #[test]
    fn an_initializing_shard_makes_its_index_yellow() {
        let h = index_health(3, &[false, true, false]);
        assert_eq!(h.status, HealthStatus::Yellow);
        assert_eq!((h.active_shards, h.initializing_shards), (2, 1));
        assert_eq!(index_health(2, &[false, false]).status, HealthStatus::Green);
    }

    #[test]
    fn conditions_count_only_what_was_asked() {
        let health = ClusterHealth {
            cluster_name: "c".into(),
            status: HealthStatus::Yellow,
            timed_out: false,
            number_of_nodes: 1,
            active_shards: 2,
            initializing_shards: 1,
            indices: BTreeMap::new(),
        };
        let mut req = HealthRequest {
            indices: None,
            expand_open: true,
            expand_closed: true,
            wait_for_status: None,
            wait_for_nodes: None,
            wait_for_active_shards: None,
            wait_for_no_initializing_shards: false,
            wait_for_no_relocating_shards: false,
            timeout: Duration::ZERO,
        };
        assert_eq!(health.conditions(&req, false), (0, 0));
        req.wait_for_status = Some(HealthStatus::Yellow);
        assert_eq!(health.conditions(&req, false), (1, 1));
        req.wait_for_status = Some(HealthStatus::Green);
        req.wait_for_nodes = Some(NodeCount::Ge(1));
        req.wait_for_active_shards = Some(ActiveShards::All);
        assert_eq!(health.conditions(&req, false), (1, 3));
        assert!((health.active_percent() - 66.666).abs() < 0.01);
    }
}
