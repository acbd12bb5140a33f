// @ts-check
// Calling the app's callbacks from places where nothing can be thrown back to a caller (the
// storage driver's and the connections' pumps): what a callback throws is reported, and the pump
// goes on. One copy for every pump.

/** An error's message, or the thrown value as text. @param {unknown} e */
export function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Calls `fn(arg)` if there is an `fn`; what it throws goes to the console, naming `who`.
 * @template A
 * @param {string} who
 * @param {((arg: A) => void) | undefined} fn
 * @param {A} arg
 */
export function listen(who, fn, arg) {
  if (fn === undefined) return;
  try {
    fn(arg);
  } catch (e) {
    console.error(`onegrid: ${who} threw`, e);
  }
}
