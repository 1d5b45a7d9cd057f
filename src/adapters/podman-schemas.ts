import { z } from 'zod';

/** The subset of `podman ps -a --format json` agentd reads. */
export const containerSummarySchema = z.object({
  Id: z.string(),
  Names: z.array(z.string()).default([]),
  State: z.string(),
  Labels: z.record(z.string(), z.string()).nullable().default({}),
  ExitCode: z.number().optional(),
  StartedAt: z.number().optional(),
  /** Unix seconds; zero or negative while the container has not exited. */
  ExitedAt: z.number().optional(),
  Created: z.number().optional(),
});
export type ContainerSummary = z.infer<typeof containerSummarySchema>;
export const containerListSchema = z.array(containerSummarySchema).nullable();

/** The subset of `podman info --format '{{json .Host.Security}}'` agentd reads: the engine's seccomp. */
export const securityInfoSchema = z.object({
  seccompEnabled: z.boolean(),
  /** The default profile's file; absent or empty: Podman's built-in profile. */
  seccompProfilePath: z.string().optional(),
});

/** The subset of `podman volume inspect --format json` agentd reads: a bounded cache's mount options. */
export const volumeInspectSchema = z.array(
  z.object({
    Name: z.string(),
    Options: z.record(z.string(), z.string()).nullish(),
    Labels: z.record(z.string(), z.string()).nullish(),
  }),
);

/** The subset of `podman container inspect` agentd reads. */
export const containerInspectSchema = z.object({
  Id: z.string(),
  Name: z.string(),
  /** The image's id, the reference it was created from and its digest. */
  Image: z.string().optional(),
  ImageName: z.string().optional(),
  ImageDigest: z.string().optional(),
  /** Where its storage is: the container's layer under the store's root (`ROOT/overlay/ID/diff`). */
  GraphDriver: z
    .object({ Name: z.string().optional(), Data: z.record(z.string(), z.string()).nullable().optional() })
    .optional(),
  State: z.object({
    Status: z.string(),
    Running: z.boolean(),
    ExitCode: z.number(),
    StartedAt: z.string().optional(),
    FinishedAt: z.string().optional(),
  }),
  Config: z
    .object({
      Labels: z.record(z.string(), z.string()).nullable().optional(),
      Env: z.array(z.string()).nullable().optional(),
      Timeout: z.number().optional(),
      /** The Podman secrets it was created with, by name (they outlive `podman secret rm`). */
      Secrets: z
        .array(z.object({ Name: z.string() }).passthrough())
        .nullable()
        .optional(),
    })
    .passthrough(),
  /** The container's own directory in Podman's storage (`.../overlay-containers/ID/userdata`). */
  StaticDir: z.string().optional(),
});
export type ContainerInspect = z.infer<typeof containerInspectSchema>;
