import { policyCompiler, policySchema } from './policy.ts';
import type { RuleKind } from './rule.ts';
import { kpoCollisionGuard } from './rules/kpoCollisionGuard.ts';
import { kpoEnvironment } from './rules/kpoEnvironment.ts';
import { kpoOwnership } from './rules/kpoOwnership.ts';
import { gracePeriodFloor } from './rules/gracePeriodFloor.ts';
import { nodeDenylist } from './rules/nodeDenylist.ts';
import { podMetadata } from './rules/podMetadata.ts';
import { resourceFloors } from './rules/resourceFloors.ts';

/**
 * Every rule kind podgate knows. Adding a kind is a file in rules/ and a line
 * here; nothing else in the server changes.
 */
export const RULE_KINDS: readonly RuleKind[] = [resourceFloors, gracePeriodFloor, nodeDenylist, podMetadata, kpoEnvironment, kpoCollisionGuard, kpoOwnership];

export const compilePolicy = policyCompiler(RULE_KINDS);
export const POLICY_SCHEMA = policySchema(RULE_KINDS);
