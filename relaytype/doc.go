// Package relaytype holds the leaf types shared by the relay server and its
// clients: job specs and records, job states and their transitions, events,
// artifacts and the error codes of the product contract. It imports only the
// standard library so that the public SDK can depend on it.
package relaytype
