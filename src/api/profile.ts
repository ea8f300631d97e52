/** A profile as GET /1.0/profiles/<name> returns it (LXD 5.0's shape). */
export interface Profile {
  name: string;
  description: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
  /** Instances using the profile: /1.0/instances/<name>, with ?project= outside "default". */
  used_by: string[];
}

/** PUT /1.0/profiles/<name> (PATCH: any subset). */
export interface ProfilePut {
  description?: string;
  config?: Record<string, string>;
  devices?: Record<string, Record<string, string>>;
}

/** POST /1.0/profiles. */
export interface ProfilesPost extends ProfilePut {
  name: string;
}
