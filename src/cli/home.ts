export { teleportHome } from "../store/teleport-home.js";
