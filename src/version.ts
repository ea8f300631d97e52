/** Lodge's own version, shown by `lodged --version`, `lodge version` and GET /1.0. */
export const LODGE_VERSION = "0.1.0";
/** The LXD API version whose wire format Lodge speaks. */
export const API_VERSION = "1.0";
