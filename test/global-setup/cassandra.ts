import type { TestProject } from "vitest/node";
import { externalCassandraNode, startCassandraNode, TEST_CASSANDRA_ENV } from "../support/cassandra.js";

/**
 * Starts one single-node Cassandra for the whole run (deploy/cassandra/cassandra.sh, ~5-7 s,
 * in a temporary directory deleted afterwards) and hands its contact point to tests as
 * `inject("cassandraContactPoint")`; with IM_TEST_CASSANDRA=host:port set it uses that node
 * instead and starts nothing. It starts a node only when the run includes a test file whose
 * path contains "cassandra", so other runs pay nothing.
 *
 * A Cassandra that cannot start fails the run, with the launcher's output and the node's log
 * tail, under CI=true and everywhere else: Cassandra tests are never skipped silently.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = externalCassandraNode();
  if (external !== undefined) {
    project.provide("cassandraContactPoint", external.contactPoint);
    return undefined;
  }
  if (!(await runIncludesCassandraTests(project))) {
    project.provide("cassandraContactPoint", "");
    return undefined;
  }
  let node;
  try {
    node = await startCassandraNode();
  } catch (error) {
    const where = process.env.CI === "true" ? "CI" : "this machine";
    throw new Error(
      `Cassandra could not start on ${where}, so the Cassandra tests cannot run (set ${TEST_CASSANDRA_ENV}=host:port to use a running node).\n${(error as Error).message}`,
    );
  }
  project.provide("cassandraContactPoint", node.contactPoint);
  return () => node.destroy();
}

/** Whether the files selected for this run (CLI filters applied) include a Cassandra test. */
async function runIncludesCassandraTests(project: TestProject): Promise<boolean> {
  // `filenamePattern` holds the CLI's file filters; if a later vitest renames it, the
  // fallback (no filter: every file) only costs a node start.
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern ?? [];
  const specs = await project.vitest.globTestSpecifications(filters);
  return specs.some((spec) => /cassandra/i.test(spec.moduleId));
}
