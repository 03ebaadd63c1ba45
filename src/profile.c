/*
 * libshadowmmu — the two eras' rules, side by side (see profile.h for what each rule means).
 *
 * SPDX-License-Identifier: MIT
 */
#include "profile.h"

#include <stddef.h>

const struct smmu_rules smmu_rules_3_11 = {
	.name = "linux-3.11",
	.hash_fn = SMMU_HASH_MASK,
	.hash_buckets = 1024,
	.zap_all_commit_once = false,
};

const struct smmu_rules smmu_rules_today = {
	.name = "linux-today",
	.hash_fn = SMMU_HASH_HASH64,
	.hash_buckets = 4096,
	.zap_all_commit_once = true,
};

const struct smmu_rules *smmu_profile_rules(enum smmu_profile profile)
{
	switch (profile) {
	case SMMU_PROFILE_LINUX_3_11:
		return &smmu_rules_3_11;
	case SMMU_PROFILE_LINUX_TODAY:
		return &smmu_rules_today;
	}
	return NULL;
}
