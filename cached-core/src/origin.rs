//! [`Origin`]: how a call got its result.

/// How a call got its result: what `f_with_origin` (generated next to every `#[cached] fn f`)
/// returns next to the value, for callers that must know whether *their* call ran the function
/// (a throttle: "play the sound only if this call is the one that computed it").
///
/// ```
/// use memoflight::{cached, Origin};
///
/// #[cached]
/// fn announce(topic: &str) -> usize {
///     topic.len()
/// }
///
/// assert_eq!(announce_with_origin("news"), (4, Origin::Computed));
/// assert_eq!(announce_with_origin("news"), (4, Origin::Hit));
/// assert_eq!(announce("news"), 4); // the ordinary function is untouched
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// Found in the store.
    Hit,
    /// Received from another caller's computation of the same key, which this call waited for.
    Waited,
    /// This call ran the function. Among concurrent calls on one key, exactly one computes.
    Computed,
    /// Computing the value failed and an expired value still held was returned instead
    /// (`#[cached(result_fallback)]`): the `Err` went to no caller. The callers that waited for
    /// the failed computation get the same fallback.
    Fallback,
}
