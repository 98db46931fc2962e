// The person's steps of issue 13, in order. Each is independent: it registers its own users,
// so any subset can run (WEB_STEPS).
import { devices } from "./devices.mjs";
import { encryption } from "./encryption.mjs";
import { login } from "./login.mjs";
import { profile } from "./profile.mjs";
import { logout } from "./logout.mjs";
import { rooms } from "./rooms.mjs";
import { unread } from "./unread.mjs";

export const STEPS = [login, devices, rooms, unread, encryption, profile, logout];
