import { LocalDeliveryRouter } from "../../../server/route/local-delivery-router.js";
import { describeDeliveryRouterContract } from "./delivery-router-contract.js";

describeDeliveryRouterContract("LocalDeliveryRouter", async () => ({ routers: [new LocalDeliveryRouter()], close: async () => {} }), 1);
