// The test Service Worker: the package's FHIR endpoint under /fhir, as a user's worker would.
import { serveFhir } from "/pkg/src/service-worker.js";

serveFhir({ prefix: "/fhir", name: "sw-store" });
