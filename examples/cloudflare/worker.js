// The whole worker: the router sends /fhir/<tenant>/... to the tenant's Durable Object.
export { FhirDurableObject, default } from "hearth-fhir/cloudflare";
