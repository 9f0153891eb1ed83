#!/usr/bin/env node
// Faulty on purpose: the signed body is JSON.stringify's text, members in the order they
// arrived, instead of RFC 8785's canonical JSON (members sorted, R-SIGN-3). The
// implementation agrees with itself, so its own manifests verify for it; but a snapshot
// whose keys are not in order makes bytes no other implementation signs, and the kit's
// manifests stop verifying (INV-SIGNATURE, bad_signature).
"use strict";

const { main } = require("../impl.js");

main({ name: "replication-js (faulty: unsorted-json)", canonical: (value) => JSON.stringify(value) });
