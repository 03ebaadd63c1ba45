/*
 * libshadowmmu — version. meson reads these with cc.get_define().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_VERSION_H
#define SHADOWMMU_VERSION_H

#define SMMU_VERSION_MAJOR 0
#define SMMU_VERSION_MINOR 1
#define SMMU_VERSION_PATCH 0

#endif
