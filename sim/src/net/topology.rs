//! The topology: which pairs of nodes may talk at all, as a named shape
//! (`full`, `ring`, `star`, `random`, `grid`) built into a petgraph graph.

use std::fmt;
use std::str::FromStr;

use petgraph::graphmap::UnGraphMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NetError;

/// A named shape for the topology, built into a graph by [`Topology::build`].
///
/// Text form: `"full"`, `"ring"`, `"star"` (hub 0), `"star:3"`,
/// `"random:4"`, `"grid:10"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Everyone talks to everyone (no restriction).
    Full,
    /// Node i talks to i - 1 and i + 1, wrapping around.
    Ring,
    /// Every node talks only to the hub.
    Star {
        /// The node at the centre.
        hub: u32,
    },
    /// A ring plus random chords, so each node has about `degree` neighbours.
    RandomRegular {
        /// Target number of neighbours per node (at least 2).
        degree: u32,
    },
    /// Nodes laid out row by row, `width` per row, each talking to its
    /// left, right, up and down neighbours.
    Grid {
        /// Nodes per row (at least 1).
        width: u32,
    },
}

impl Topology {
    /// Checks that the topology makes sense for a cluster of `nodes` nodes
    /// (the star's hub must be one of them).
    pub fn validate(&self, nodes: usize) -> Result<(), NetError> {
        let reason = match *self {
            Topology::Star { hub } if hub as usize >= nodes && nodes > 0 => {
                format!("hub {hub} is not one of the {nodes} nodes")
            }
            Topology::RandomRegular { degree } if degree < 2 => {
                "degree must be at least 2 to stay connected".to_string()
            }
            Topology::Grid { width: 0 } => "width must be at least 1".to_string(),
            _ => return Ok(()),
        };
        Err(NetError::Topology {
            input: self.to_string(),
            reason,
        })
    }

    /// Builds the graph over nodes `0..nodes`, or `None` for [`Topology::Full`]
    /// (no restriction).
    ///
    /// Every node appears in the graph, and every graph built is connected:
    /// - `Ring`: a cycle (one edge for two nodes).
    /// - `Star`: edges hub–i; a hub outside the cluster falls back to node 0
    ///   (use [`Topology::validate`] to reject it instead).
    /// - `RandomRegular`: a ring, plus chords paired at random (configuration
    ///   model, a few rounds, skipping self-loops and repeats) until nodes
    ///   reach `degree` neighbours. Degrees are approximate: a few nodes may
    ///   end one or two short. Degrees below 2 give the plain ring; degrees at
    ///   or above `nodes - 1` give the complete graph. Only this variant uses `rng`.
    /// - `Grid`: row-major layout; the last row may be partial. Width 0 is treated as 1.
    pub fn build(&self, nodes: usize, rng: &mut ChaCha8Rng) -> Option<UnGraphMap<u32, ()>> {
        let n = u32::try_from(nodes).unwrap_or(u32::MAX);
        let mut g = UnGraphMap::with_capacity(nodes, nodes.saturating_mul(2));
        for i in 0..n {
            g.add_node(i);
        }
        match *self {
            Topology::Full => return None,
            Topology::Ring => add_ring(&mut g, n),
            Topology::Star { hub } => {
                let hub = if hub < n { hub } else { 0 };
                for i in (0..n).filter(|&i| i != hub) {
                    g.add_edge(hub, i, ());
                }
            }
            Topology::RandomRegular { degree } => {
                add_ring(&mut g, n);
                add_random_chords(&mut g, n, degree, rng);
            }
            Topology::Grid { width } => {
                let w = width.max(1);
                for i in 0..n {
                    if i % w + 1 < w && i + 1 < n {
                        g.add_edge(i, i + 1, ());
                    }
                    if let Some(below) = i.checked_add(w).filter(|&b| b < n) {
                        g.add_edge(i, below, ());
                    }
                }
            }
        }
        Some(g)
    }
}

fn add_ring(g: &mut UnGraphMap<u32, ()>, n: u32) {
    if n < 2 {
        return;
    }
    for i in 0..n - 1 {
        g.add_edge(i, i + 1, ());
    }
    if n > 2 {
        g.add_edge(n - 1, 0, ());
    }
}

/// Tops every node up towards `degree` neighbours by pairing shuffled
/// "stubs" (one per missing neighbour). Pairs that would be self-loops or
/// repeats are retried in later rounds; what remains after that is left
/// short, which is why the result is only approximately regular.
fn add_random_chords(g: &mut UnGraphMap<u32, ()>, n: u32, degree: u32, rng: &mut ChaCha8Rng) {
    const ROUNDS: usize = 8;
    let target = degree.min(n.saturating_sub(1)) as usize;
    let mut stubs: Vec<u32> = Vec::new();
    for i in 0..n {
        let have = g.neighbors(i).count();
        stubs.extend(std::iter::repeat_n(i, target.saturating_sub(have)));
    }
    for _ in 0..ROUNDS {
        if stubs.len() < 2 {
            break;
        }
        // Fisher–Yates by hand so the order depends only on rand's
        // random_range, not on a library shuffle that might change.
        for i in (1..stubs.len()).rev() {
            let j = rng.random_range(0..=i);
            stubs.swap(i, j);
        }
        let mut left = Vec::new();
        for pair in stubs.chunks(2) {
            match *pair {
                [a, b] if a != b && !g.contains_edge(a, b) => {
                    g.add_edge(a, b, ());
                }
                _ => left.extend_from_slice(pair),
            }
        }
        if left.len() == stubs.len() {
            break;
        }
        stubs = left;
    }
}

impl FromStr for Topology {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Topology, NetError> {
        let err = |reason: &str| NetError::Topology {
            input: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let (name, arg) = match t.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (t, None),
        };
        let number = |what: &str| -> Result<u32, NetError> {
            arg.ok_or_else(|| err(&format!("{name} needs a {what}, e.g. {name}:4")))?
                .parse()
                .map_err(|_| err(&format!("{what} must be a non-negative integer")))
        };
        let topology = match (name, arg) {
            ("full", None) => Topology::Full,
            ("ring", None) => Topology::Ring,
            ("star", None) => Topology::Star { hub: 0 },
            ("star", Some(_)) => Topology::Star {
                hub: number("hub")?,
            },
            ("random", _) => Topology::RandomRegular {
                degree: number("degree")?,
            },
            ("grid", _) => Topology::Grid {
                width: number("width")?,
            },
            ("full" | "ring", Some(_)) => return Err(err("takes no argument")),
            _ => return Err(err(
                "unknown topology (expected full, ring, star[:HUB], random:DEGREE or grid:WIDTH)",
            )),
        };
        // Only the node-count-independent checks apply here.
        match topology.validate(usize::MAX) {
            Err(NetError::Topology { reason, .. }) => Err(err(&reason)),
            _ => Ok(topology),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Topology::Full => f.write_str("full"),
            Topology::Ring => f.write_str("ring"),
            Topology::Star { hub } => write!(f, "star:{hub}"),
            Topology::RandomRegular { degree } => write!(f, "random:{degree}"),
            Topology::Grid { width } => write!(f, "grid:{width}"),
        }
    }
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Topology, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn connected(g: &UnGraphMap<u32, ()>, n: u32) -> bool {
        let mut seen = vec![false; n as usize];
        let mut stack = vec![0u32];
        seen[0] = true;
        while let Some(v) = stack.pop() {
            for w in g.neighbors(v) {
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push(w);
                }
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn built_topologies_are_connected_and_shaped() {
        let g = Topology::RandomRegular { degree: 6 }
            .build(1_000, &mut rng(11))
            .unwrap();
        assert!(connected(&g, 1_000));
        let degrees: Vec<usize> = (0..1_000).map(|i| g.neighbors(i).count()).collect();
        assert!(degrees.iter().all(|&d| (4..=6).contains(&d)));
        assert!(degrees.iter().filter(|&&d| d == 6).count() >= 990);

        let g = Topology::Grid { width: 4 }.build(10, &mut rng(0)).unwrap();
        assert!(connected(&g, 10));
        assert!(g.contains_edge(0, 4) && g.contains_edge(8, 9) && !g.contains_edge(3, 4));

        let g = Topology::Star { hub: 3 }.build(6, &mut rng(0)).unwrap();
        assert_eq!(g.edge_count(), 5);
        assert!(g.contains_edge(3, 0) && !g.contains_edge(0, 1));
        assert!(Topology::Full.build(6, &mut rng(0)).is_none());
        assert!(Topology::Star { hub: 6 }.validate(6).is_err());
    }

    #[test]
    fn topology_text_round_trips_and_rejects_nonsense() {
        for text in ["full", "ring", "star:3", "random:4", "grid:10"] {
            let t: Topology = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "star".parse::<Topology>().unwrap(),
            Topology::Star { hub: 0 }
        );
        for bad in [
            "mesh", "random", "random:x", "random:1", "grid:0", "ring:3", "star:-1",
        ] {
            assert!(bad.parse::<Topology>().is_err(), "{bad} should fail");
        }
    }
}
