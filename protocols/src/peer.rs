//! What the protocols need to know about a peer's identity.

use std::fmt::Debug;
use std::hash::Hash;

/// A peer identity as the protocols see it.
///
/// The engine instantiates it with the authenticated node identity (name plus listen
/// addresses); the simulator and the unit tests use plain integers. Ordering and equality must
/// be total and stable: iteration orders in the protocols depend on them, never on hash seeds.
pub trait PeerId: Clone + Ord + Eq + Hash + Debug + 'static {}

impl<T: Clone + Ord + Eq + Hash + Debug + 'static> PeerId for T {}
